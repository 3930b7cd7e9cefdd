"""TLS termination for ``rempart serve``: one hardened server context.

Follows RFC 9325 (BCP 195, secure use of TLS) §4: TLS 1.2 at least and 1.3 preferred
(OpenSSL picks the highest version both sides speak), no TLS-level compression (CRIME,
§3.3), no renegotiation, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers
(§4.2; TLS 1.3 suites are all AEAD with forward secrecy already). Optional mutual TLS
for system clients: a client CA makes presented certificates verified against it, and
``require_client_cert`` refuses the handshake of a client that presents none.

uvicorn builds the context in every worker process (``Config.load()`` runs again in
each spawned child), so the hardening is given as its ``ssl_context_factory``: a
module-level function, pickled by reference, that each worker runs on its own context.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uvicorn import Config

# TLS 1.2 only: ECDHE for forward secrecy, AES-GCM or ChaCha20-Poly1305 for AEAD.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


class TlsError(ValueError):
    """TLS options or files that cannot be used; the message is for the operator."""


@dataclass(frozen=True)
class TlsConfig:
    """TLS termination by Rempart itself; absent, Rempart listens on loopback only."""

    cert_file: Path
    """PEM certificate chain, the server certificate first."""
    key_file: Path
    """PEM private key of the server certificate, not encrypted."""
    client_ca_file: Path | None = None
    """PEM CA certificates for mutual TLS: a client certificate must chain to one."""
    require_client_cert: bool = False
    """Refuse the handshake of a client without a certificate (needs ``client_ca_file``)."""


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """Rempart's TLS policy applied to a server context (module docstring)."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # The server's order (AEAD, strongest first) wins over the client's.
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_ciphers(TLS12_CIPHERS)
    return context


def hardened_context(config: Config, default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory``: its own context (files, ALPN), hardened."""
    return harden(default())


def uvicorn_options(tls: TlsConfig | None) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` for ``tls`` (none without TLS)."""
    if tls is None:
        return {}
    return {
        "ssl_certfile": str(tls.cert_file),
        "ssl_keyfile": str(tls.key_file),
        "ssl_ca_certs": str(tls.client_ca_file) if tls.client_ca_file else None,
        "ssl_cert_reqs": _cert_reqs(tls),
        "ssl_context_factory": hardened_context,
    }


def check(tls: TlsConfig) -> None:
    """Builds the context once, before any worker starts, so that a bad file is
    reported clearly here rather than as a stack trace in each worker."""
    for option, path in _files(tls):
        if not path.is_file() or not os.access(path, os.R_OK):
            raise TlsError(f"{option}: cannot read {path}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        # An encrypted key would make OpenSSL prompt on the terminal in every worker.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
        if tls.client_ca_file:
            context.load_verify_locations(tls.client_ca_file)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            "TLS certificate or key unusable (PEM expected, key matching the "
            f"certificate, not encrypted): {exc}"
        ) from None
    context.verify_mode = _cert_reqs(tls)
    harden(context)


def _files(tls: TlsConfig) -> list[tuple[str, Path]]:
    files = [("--tls-cert", tls.cert_file), ("--tls-key", tls.key_file)]
    if tls.client_ca_file:
        files.append(("--tls-client-ca", tls.client_ca_file))
    return files


def _cert_reqs(tls: TlsConfig) -> ssl.VerifyMode:
    if tls.client_ca_file is None:
        return ssl.CERT_NONE
    return ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL


def _no_password() -> bytes:
    raise TlsError("encrypted private keys are not supported")
