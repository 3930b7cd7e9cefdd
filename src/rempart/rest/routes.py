"""Which interaction answers which request: methods and path shapes (FHIR R4 §3.1.0).

Shared by the HTTP endpoint (``web/``) and by batch/transaction Bundles, whose entries
are dispatched to the same interactions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from rempart.rest import (
    bundle,
    conditional,
    create,
    delete,
    everything,
    history,
    patch,
    read,
    search,
    update,
    vread,
)
from rempart.rest.context import Context
from rempart.rest.http import FhirRequest, FhirResponse

Handler = Callable[[Context, FhirRequest], Awaitable[FhirResponse]]

INTERACTIONS: list[tuple[str, str, Handler]] = [
    ("GET", "", search.search_system),
    ("POST", "_search", search.search_system),
    ("POST", "", bundle.bundle),
    ("GET", "T", search.search_type),
    ("POST", "T/_search", search.search_type),
    ("PUT", "T", conditional.update),
    ("DELETE", "T", conditional.delete),
    ("PATCH", "T", conditional.patch),
    ("GET", "T/I/C", search.search_compartment),
    ("GET", "T/I/$", everything.everything),
    ("GET", "_history", history.history),
    ("GET", "T/_history", history.history),
    ("POST", "T", create.create),
    ("GET", "T/I", read.read),
    ("PUT", "T/I", update.update),
    ("DELETE", "T/I", delete.delete),
    ("PATCH", "T/I", patch.patch),
    ("GET", "T/I/_history", history.history),
    ("GET", "T/I/_history/V", vread.vread),
]


def shape_of(parts: list[str]) -> tuple[str, dict[str, str]]:
    """``["Patient", "1", "_history", "2"]`` → ``("T/I/_history/V", {...})``."""
    if len(parts) == 1:
        if parts[0] in ("", "metadata", "_history", "_search"):
            return parts[0], {}
        return "T", {"type": parts[0]}
    if len(parts) == 2:
        if parts[1] in ("_history", "_search"):
            return f"T/{parts[1]}", {"type": parts[0]}
        return "T/I", {"type": parts[0], "id": parts[1]}
    names = {"type": parts[0], "id": parts[1]}
    if len(parts) == 3:
        if parts[2] == "_history":
            return "T/I/_history", names
        shape = "T/I/$" if parts[2].startswith("$") else "T/I/C"
        return shape, {**names, "target": parts[2]}
    if len(parts) == 4 and parts[2] == "_history":
        return "T/I/_history/V", {**names, "version": parts[3]}
    return "?", {}
