"""The bearer token every benchmark request to ``/fhir`` carries.

Rempart's FHIR API answers 401 without an access token (only ``/fhir/metadata`` and
``/fhir/.well-known/smart-configuration`` are open). A real token comes from the
authorization server and lives 5 minutes; wrk sends fixed headers for a whole run and
cannot refresh one. So the benchmark mints its own long-lived token, as
``tests/conftest.py`` ``mint_token`` does: a ``system/*.cruds`` backend grant signed
with the server's own key from ``<data_dir>/keys/signing-keys.json``, with the FHIR
base as the client sees it for issuer and audience. Only the issuing is skipped: the
server still checks the token on every request (signature once per process and
token, then issuer, audience, expiry and the revocation blocks), and that cost is in
the numbers.
"""

from __future__ import annotations

from pathlib import Path

from rempart.security.oauth.signing import SigningKeys
from rempart.security.oauth.tokens import Grant, Tokens

SCOPES = ("system/*.cruds",)
CLIENT = "rempart-bench"


def bench_token(data_dir: Path, base: str, hours: float = 3) -> str:
    """A ``system/*.cruds`` access token for the server serving ``data_dir`` at ``base``
    (e.g. ``http://127.0.0.1:8080/fhir``), valid for ``hours``.

    Call it once the server is ready: ``rempart serve`` creates the key file at start.
    """
    path = data_dir / "keys" / "signing-keys.json"
    if not path.exists():
        raise RuntimeError(f"no signing key at {path}: start the server first")
    keys = SigningKeys(path)
    grant = Grant(CLIENT, CLIENT, False, SCOPES)
    return Tokens(keys, None, int(hours * 3600)).issue(grant, base, base, None)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
