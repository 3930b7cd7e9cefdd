"""Sending audit records to a syslog server: over TCP with octet-counting framing
(RFC 6587 §3.4.1) or over TLS (RFC 5425: TLS 1.2 or later, the server's certificate
verified against the system's trust store or a given CA file, and its name checked).

A batch counts as delivered once ``sendall`` has returned: written and handed to the
kernel. Neither RFC has an application acknowledgement, so a connection that breaks
just after may still lose what was in flight (docs/audit-export.md).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from rempart.errors import Category, RempartError
from rempart.security.audit.records import StoredRecord
from rempart.security.audit.rfc5424 import frame, message

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SyslogTarget:
    tls: bool
    host: str
    port: int


def parse_url(url: str) -> SyslogTarget:
    """``tcp://HOST:PORT`` or ``tls://HOST:PORT``."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None:
        raise RempartError(Category.INCORRECT, "The syslog URL must be tcp://HOST:PORT or tls://…")
    return SyslogTarget(parts.scheme == "tls", parts.hostname, port)


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host name verified (the defaults), TLS 1.2 at least."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SyslogSender:
    """A connection to a syslog server; a destination of ``export.export_records``."""

    def __init__(self, sock: socket.socket, hostname: str) -> None:
        self._sock = sock
        self._hostname = hostname

    @classmethod
    def connect(cls, url: str, ca_file: Path | None = None) -> SyslogSender:
        target = parse_url(url)
        context = tls_context(ca_file) if target.tls else None
        try:
            sock = socket.create_connection((target.host, target.port), TIMEOUT_SECONDS)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname=target.host)
        except OSError as exc:  # refused, unreachable, certificate not trusted…
            raise RempartError(Category.UNAVAILABLE, f"Cannot reach {url}: {exc}") from exc
        return cls(sock, socket.gethostname())

    def send(self, records: Sequence[StoredRecord]) -> None:
        self._sock.sendall(b"".join(frame(message(r, self._hostname)) for r in records))

    def close(self) -> None:
        self._sock.close()
