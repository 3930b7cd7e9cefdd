"""``rempart audit export --format syslog`` to a real listener on 127.0.0.1: octet
counted RFC 5424 messages over TCP, and over TLS verified against ``--syslog-ca``; a
certificate from another CA fails the export and leaves the mark where it was."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rempart.cli.main import main
from rempart.config import Settings, StorageSettings
from rempart.security.audit.rfc5424 import BOM
from rempart.storage.open_audit import open_audit_signer, open_audit_store

HEADER = re.compile(rb'<(\d+)>1 \S+ \S+ rempart - \S+ \[rempart@32473 seq="(\d+)" hash="(\w+)"\] ')


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("syslog-pki")
    ca_key, other_key, server_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _cert("syslog test CA", ca_key, None)
    server = _cert("localhost", server_key, (ca, ca_key))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "other.pem").write_bytes(_cert("another CA", other_key, None).public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Pki(
        folder / "ca.pem", folder / "other.pem", folder / "server.pem", folder / "server.key"
    )


@dataclass
class Listener:
    """A syslog server on loopback: collects what each connection sent until it closed."""

    context: ssl.SSLContext | None = None
    received: list[bytes] = field(default_factory=list)
    sock: socket.socket = field(default_factory=socket.socket)

    def __post_init__(self) -> None:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        data = b""
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            while chunk := conn.recv(65536):
                data += chunk
        except (OSError, ssl.SSLError):
            data = b""  # a refused handshake: nothing received
        finally:
            conn.close()
            self.received.append(data)

    def messages(self) -> list[bytes]:
        self.thread.join(10)
        data, found = self.received[0], []
        while data:
            length, _, rest = data.partition(b" ")
            found.append(rest[: int(length)])
            data = rest[int(length) :]
        return found

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A SQLite audit store with five records."""
    settings = Settings(storage=StorageSettings(data_dir=tmp_path / "data"))

    async def fill() -> None:
        store = await open_audit_store(settings, open_audit_signer(settings))
        outcomes = ["0", "4", "8", "0", "0"]
        await store.append_many(
            [{"subtype": [{"code": "read"}], "outcome": o, "n": n} for n, o in enumerate(outcomes)]
        )
        await store.close()

    asyncio.run(fill())
    return settings


@pytest.fixture
def listener(request: pytest.FixtureRequest, pki: Pki) -> Iterator[Listener]:
    context = None
    if request.param == "tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pki.server_cert, pki.server_key)
    opened = Listener(context)
    yield opened
    opened.close()


def export(settings: Settings, url: str, *extra: str) -> int:
    argv = ["audit", "export", "--data-dir", str(settings.storage.data_dir)]
    return main([*argv, "--format", "syslog", "--syslog-url", url, "--since-last", "siem", *extra])


def mark(settings: Settings) -> int | None:
    async def read() -> int | None:
        store = await open_audit_store(settings, None, create=False)
        try:
            return await store.export_mark("siem")
        finally:
            await store.close()

    return asyncio.run(read())


@pytest.mark.parametrize("listener", ["tcp", "tls"], indirect=True)
def test_records_arrive_as_framed_rfc_5424_messages(
    settings: Settings, listener: Listener, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    scheme = "tcp" if listener.context is None else "tls"
    extra = ["--syslog-ca", str(pki.ca)] if scheme == "tls" else []
    assert export(settings, f"{scheme}://127.0.0.1:{listener.port}", *extra) == 0
    assert json.loads(capsys.readouterr().out) == {"exported": 5, "first": 1, "last": 5}
    messages = listener.messages()
    heads = [HEADER.match(m) for m in messages]
    assert [(int(h[1]), int(h[2])) for h in heads if h] == [
        (86, 1), (84, 2), (83, 3), (86, 4), (86, 5)
    ]  # fmt: skip
    assert all(
        m[h.end() :].startswith(BOM + b'{"n":') for m, h in zip(messages, heads, strict=True) if h
    )
    assert mark(settings) == 5


@pytest.mark.parametrize("listener", ["tls"], indirect=True)
def test_a_server_certificate_from_another_ca_fails_and_marks_nothing(
    settings: Settings, listener: Listener, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"tls://127.0.0.1:{listener.port}"
    assert export(settings, url, "--syslog-ca", str(pki.other_ca)) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in capsys.readouterr().err
    listener.thread.join(10)
    assert listener.received == [b""]
    assert mark(settings) is None


def test_an_unreachable_server_fails_and_marks_nothing(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert export(settings, f"tcp://127.0.0.1:{port}") == 1
    assert capsys.readouterr().err.startswith("rempart: Cannot reach tcp://127.0.0.1:")
    assert mark(settings) is None
