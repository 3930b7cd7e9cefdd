"""TLS termination by ``rempart serve`` (issue 5): versions, ciphers, headers, mTLS.

Each check talks to a real server process through Python's ``ssl`` module, with a CA,
server and client certificates made here.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import ServerProcess, bearer, free_port, mint_token
from rempart.cli.main import may_bind, tls_config
from rempart.config import Settings, StorageSettings
from rempart.web.tls import TlsError

CBC_ONLY = (
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
    "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384"
)


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # a client certificate from another CA
    stranger_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
    )
    if usage is None:  # a CA
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    else:
        akid = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(akid, critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (folder / f"{stem}.key").write_bytes(pem)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_key, other_ca_key = _key(), _key()
    ca = _issue("Rempart test CA", ca_key, None, None)
    _write(folder, "ca", ca, ca_key)
    signer = (ca.subject, ca_key)
    for stem, usage, issuer in [
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, signer),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, signer),
        ("stranger", ExtendedKeyUsageOID.CLIENT_AUTH, (_name("Other CA"), other_ca_key)),
    ]:
        key = _key()
        _write(folder, stem, _issue(stem, key, issuer, usage), key)
    return Pki(
        *(folder / name for name in ["ca.pem", "server.pem", "server.key", "client.pem"]),
        *(folder / name for name in ["client.key", "stranger.pem", "stranger.key"]),
    )


def _settings(tmp: Path) -> Settings:
    return Settings(storage=StorageSettings(data_dir=tmp / "data"))


def _tls_args(pki: Pki) -> list[str]:
    return ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    settings = _settings(tmp_path_factory.mktemp("tls"))
    server = ServerProcess(settings, extra_args=_tls_args(pki)).start()
    try:
        yield server
    finally:
        server.stop()


def _client(pki: Pki) -> ssl.SSLContext:
    """A client that trusts the test CA and checks the server's name (127.0.0.1)."""
    return ssl.create_default_context(cafile=pki.ca)


def _connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname="127.0.0.1")
    except BaseException:
        sock.close()
        raise


def _get(port: int, context: ssl.SSLContext, path: str = "/healthz") -> http.client.HTTPResponse:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _served(port: int, context: ssl.SSLContext) -> bool:
    """Whether a request on a new connection is answered (with TLS 1.3 a refused client
    certificate is only reported to the client at its first read)."""
    try:
        return _get(port, context).status == 200
    except (ssl.SSLError, ConnectionError):
        return False


def _tls11_client() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            context.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as exc:
            pytest.skip(f"the local OpenSSL cannot build a TLS 1.1 client: {exc}")
    return context


def _tls12_client(pki: Pki, ciphers: str | None = None) -> ssl.SSLContext:
    context = _client(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        context.set_ciphers(ciphers)
    return context


def _refused(port: int, context: ssl.SSLContext) -> None:
    with pytest.raises(ssl.SSLError):
        _connect(port, context).close()


def test_tls13_is_negotiated_by_default_without_compression(
    tls_server: ServerProcess, pki: Pki
) -> None:
    with _connect(tls_server.port, _client(pki)) as tls:
        assert tls.version() == "TLSv1.3"
        assert tls.compression() is None


def test_tls11_client_is_refused(tls_server: ServerProcess) -> None:
    # The client sends its hello; the server hangs up (or alerts "protocol version").
    _refused(tls_server.port, _tls11_client())


def test_tls12_client_gets_an_aead_cipher_with_forward_secrecy(
    tls_server: ServerProcess, pki: Pki
) -> None:
    with _connect(tls_server.port, _tls12_client(pki)) as tls:
        assert tls.version() == "TLSv1.2"
        cipher = tls.cipher()
        assert cipher is not None
        assert cipher[0].startswith("ECDHE-")
        assert "GCM" in cipher[0] or "CHACHA20" in cipher[0]
        assert tls.compression() is None


def test_tls12_client_with_cbc_ciphers_only_is_refused(tls_server: ServerProcess, pki: Pki) -> None:
    _refused(tls_server.port, _tls12_client(pki, CBC_ONLY))


def test_answers_over_https_carry_hsts_and_no_server_header(
    tls_server: ServerProcess, pki: Pki
) -> None:
    for path in ["/healthz", "/fhir/metadata", "/fhir/Patient"]:
        response = _get(tls_server.port, _client(pki), path)
        assert response.getheader("strict-transport-security") == (
            "max-age=63072000; includeSubDomains"
        )
        assert response.getheader("server") is None
        assert response.getheader("x-content-type-options") == "nosniff"
        assert response.getheader("cache-control") == "no-store"


def test_plain_http_answers_carry_no_hsts(tmp_path: Path) -> None:
    server = ServerProcess(_settings(tmp_path)).start()
    try:
        for path in ["/healthz", "/fhir/metadata"]:
            response = httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=5)
            assert response.status_code == 200
            assert "strict-transport-security" not in response.headers
            assert "server" not in response.headers
    finally:
        server.stop()


def test_the_fhir_base_is_https_and_tokens_are_bound_to_it(
    tls_server: ServerProcess, pki: Pki
) -> None:
    base = f"https://127.0.0.1:{tls_server.port}/fhir"
    with httpx.Client(verify=_client(pki), timeout=10) as http:
        metadata = http.get(f"{base}/metadata").json()
        security = metadata["rest"][0]["security"]["extension"][0]
        uris = [e["valueUri"] for e in security["extension"]]
        assert uris
        assert all(uri.startswith(f"https://127.0.0.1:{tls_server.port}/") for uri in uris)
        https_token = mint_token(tls_server.settings, base)
        assert http.get(f"{base}/Patient", headers=bearer(https_token)).status_code == 200
        http_token = mint_token(tls_server.settings, base.replace("https:", "http:"))
        assert http.get(f"{base}/Patient", headers=bearer(http_token)).status_code == 401


def test_two_workers_both_speak_hardened_tls(pki: Pki, tmp_path: Path) -> None:
    server = ServerProcess(_settings(tmp_path), workers=2, extra_args=_tls_args(pki)).start()
    try:
        workers: set[str] = set()
        for _ in range(400):
            with _connect(server.port, _client(pki)) as tls:
                assert tls.version() == "TLSv1.3"
            response = _get(server.port, _client(pki))
            # A request id starts with its process's random prefix (16 hex digits).
            workers.add((response.getheader("x-request-id") or "")[:16])
            # uvicorn's default context would accept these CBC suites: every refusal
            # shows that each worker runs Rempart's hardening.
            _refused(server.port, _tls12_client(pki, CBC_ONLY))
            _refused(server.port, _tls11_client())
            if len(workers) == 2:
                break
        assert len(workers) == 2
    finally:
        server.stop()


class _MtlsServer(ServerProcess):
    """Its readiness probe presents the client certificate that the server requires."""

    client: ssl.SSLContext | None = None

    def _wait_ready(self) -> None:
        assert self.client is not None and self.process is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            if _served(self.port, self.client):
                return
            time.sleep(0.1)
        raise RuntimeError("server did not start within 30 s")


def _with_cert(pki: Pki, cert: Path, key: Path) -> ssl.SSLContext:
    context = _client(pki)
    context.load_cert_chain(cert, key)
    return context


def _mtls_server(pki: Pki, tmp: Path, *flags: str) -> ServerProcess:
    args = [*_tls_args(pki), "--tls-client-ca", str(pki.ca), *flags]
    server = _MtlsServer(_settings(tmp), extra_args=args)
    server.client = _with_cert(pki, pki.client_cert, pki.client_key)
    return server.start()


def test_required_client_certificate(pki: Pki, tmp_path: Path) -> None:
    server = _mtls_server(pki, tmp_path, "--tls-require-client-cert")
    try:
        assert _served(server.port, _with_cert(pki, pki.client_cert, pki.client_key))
        assert not _served(server.port, _client(pki))
        assert not _served(server.port, _with_cert(pki, pki.stranger_cert, pki.stranger_key))
    finally:
        server.stop()


def test_optional_client_certificate_must_chain_to_the_ca(pki: Pki, tmp_path: Path) -> None:
    server = _mtls_server(pki, tmp_path)
    try:
        assert _served(server.port, _with_cert(pki, pki.client_cert, pki.client_key))
        assert _served(server.port, _client(pki))
        assert not _served(server.port, _with_cert(pki, pki.stranger_cert, pki.stranger_key))
    finally:
        server.stop()


def _serve(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rempart.cli", "serve", "--data-dir", str(tmp / "data")]
    cmd += ["--port", str(free_port()), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)


def _encrypted_copy(key_file: Path, target: Path) -> Path:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    encryption = serialization.BestAvailableEncryption(b"secret")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    target.write_bytes(pem)
    return target


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "{tmp}/missing.pem", "--tls-key", "{key}"], "--tls-cert: cannot read"),
        (["--tls-cert", "{cert}", "--tls-key", "{tmp}"], "--tls-key: cannot read"),
        (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "certificate or key unusable"),
        (["--tls-cert", "{cert}", "--tls-key", "{encrypted_key}"], "encrypted private keys"),
        (["--tls-cert", "{cert}"], "--tls-cert and --tls-key go together"),
        (
            ["--tls-cert", "{cert}", "--tls-key", "{key}", "--tls-require-client-cert"],
            "--tls-require-client-cert needs --tls-client-ca",
        ),
        (["--host", "0.0.0.0"], "refusing to bind a non-loopback address without TLS"),
    ],
)
def test_bad_tls_options_exit_2_with_a_clear_message(
    pki: Pki, tmp_path: Path, args: list[str], message: str
) -> None:
    values = {"tmp": tmp_path, "cert": pki.cert, "key": pki.key, "other_key": pki.client_key}
    values["encrypted_key"] = _encrypted_copy(pki.key, tmp_path / "encrypted.key")
    result = _serve(tmp_path, *(a.format(**values) for a in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("host", "tls", "allowed"),
    [
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("localhost", False, True),
        ("0.0.0.0", False, False),
        ("192.0.2.10", False, False),
        ("server.example", False, False),
        ("0.0.0.0", True, True),
        ("192.0.2.10", True, True),
    ],
)
def test_a_non_loopback_address_needs_tls(host: str, tls: bool, allowed: bool) -> None:
    assert may_bind(host, tls) is allowed


def test_tls_options_parse(pki: Pki) -> None:
    args = argparse.Namespace(
        tls_cert=pki.cert, tls_key=pki.key, tls_client_ca=None, tls_require_client_cert=False
    )
    config = tls_config(args)
    assert config is not None
    assert (config.cert_file, config.key_file, config.client_ca_file) == (pki.cert, pki.key, None)
    args.tls_cert = None
    with pytest.raises(TlsError):
        tls_config(args)
