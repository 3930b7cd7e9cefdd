"""What a FHIR interaction costs, and whose budget pays for it.

Costs follow the work the server does, not the number of requests: a read is one
index lookup, a write is validated, encrypted and journalled, a search or a history
scans an index and assembles a page, ``$everything`` walks a whole compartment and a
batch or transaction Bundle holds many interactions. Shapes are those of
``rest/routes.shape_of`` (``T`` type, ``I`` id, ``C`` compartment, ``$`` operation).
"""

from __future__ import annotations

from rempart.security.principal import Principal

READ = 1
WRITE = 3
SEARCH = 5
CONDITIONAL = SEARCH + WRITE
"""A conditional update, patch or delete: a search, then the write."""
BUNDLE = 10
EVERYTHING = 20

COSTS: dict[tuple[str, str], int] = {
    ("GET", "T/I"): READ,
    ("GET", "T/I/_history/V"): READ,
    ("GET", ""): SEARCH,
    ("POST", "_search"): SEARCH,
    ("GET", "T"): SEARCH,
    ("POST", "T/_search"): SEARCH,
    ("GET", "T/I/C"): SEARCH,
    ("GET", "_history"): SEARCH,
    ("GET", "T/_history"): SEARCH,
    ("GET", "T/I/_history"): SEARCH,
    ("POST", "T"): WRITE,
    ("PUT", "T/I"): WRITE,
    ("PATCH", "T/I"): WRITE,
    ("DELETE", "T/I"): WRITE,
    ("PUT", "T"): CONDITIONAL,
    ("PATCH", "T"): CONDITIONAL,
    ("DELETE", "T"): CONDITIONAL,
    ("POST", ""): BUNDLE,
    ("GET", "T/I/$"): EVERYTHING,
}


def cost(method: str, shape: str) -> int:
    """The cost units of one interaction; anything unlisted (refused later) costs one."""
    return COSTS.get((method, shape), READ)


def payer(principal: Principal) -> tuple[str, str]:
    """Whose budget pays: the user for user tokens (whatever app they use, so that
    one person cannot multiply their budget by apps), else the backend client."""
    if principal.is_user:
        return "user", principal.subject
    return "client", principal.client_id
