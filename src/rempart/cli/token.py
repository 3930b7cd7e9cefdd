"""``rempart token``: a backend-services client in one command (SMART Backend Services,
§Obtaining an access token). Signs a client assertion with the client's private key,
asks the token endpoint, prints the access token. For scripts and the README's curl
examples; real clients do the same with their own libraries.

``rempart client-key``: a new ES384 key pair for such a client: the private key to a
file (0600), the public JWKS to stdout, ready for ``rempart clients add --jwks-file``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def add_parsers(commands: Any) -> None:
    token = commands.add_parser("token", help="get an access token as a backend client")
    token.add_argument("--client-id", required=True)
    token.add_argument("--key-file", type=Path, required=True, help="private key (PEM)")
    token.add_argument("--kid", required=True, help="the key's kid in the registered JWKS")
    token.add_argument("--scope", required=True)
    token.add_argument("--url", default="http://127.0.0.1:8080", help="server origin")
    token.set_defaults(run=lambda a, s: get_token(a))
    key = commands.add_parser("client-key", help="new ES384 key pair for a backend client")
    key.add_argument("--key-file", type=Path, required=True, help="where the private key goes")
    key.add_argument("--kid", default=None)
    key.set_defaults(run=lambda a, s: new_client_key(a.key_file, a.kid))


def new_client_key(path: Path, kid: str | None = None) -> int:
    jwks = write_client_key(path, kid or f"k{secrets.token_hex(4)}")
    print(json.dumps(jwks, indent=2))
    return 0


def write_client_key(path: Path, kid: str) -> dict[str, Any]:
    """Creates the private key file (0600, never overwritten); returns the public JWKS."""
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return {"keys": [{**public, "kid": kid, "alg": "ES384", "use": "sig"}]}


def get_token(args: argparse.Namespace) -> int:
    key = serialization.load_pem_private_key(args.key_file.read_bytes(), None)
    token_url = f"{args.url.rstrip('/')}/auth/token"
    now = int(time.time())
    claims = {
        "iss": args.client_id,
        "sub": args.client_id,
        "aud": token_url,
        "exp": now + 240,
        "jti": secrets.token_urlsafe(16),
    }
    signed = jwt.encode(claims, key, algorithm="ES384", headers={"kid": args.kid})  # type: ignore[arg-type]
    form = {
        "grant_type": "client_credentials",
        "scope": args.scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": signed,
    }
    answer = httpx.post(token_url, data=form, timeout=10)
    if answer.status_code != 200:
        print(f"rempart: token refused ({answer.status_code}): {answer.text}", file=sys.stderr)
        return 1
    print(answer.json()["access_token"])
    return 0
