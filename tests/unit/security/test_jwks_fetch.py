"""The SSRF-guarded JWK Set fetcher and its cache, against real sockets on loopback."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from rempart.security.oauth.jwks_fetch import (
    FetchPolicy,
    GuardedNetworkBackend,
    JwksCache,
    JwksFetchError,
    fetch_jwks,
    is_public_address,
)

JWKS = {"keys": [{"kty": "EC", "kid": "k1", "crv": "P-256", "x": "AA", "y": "AA"}]}
LAB = FetchPolicy(allow_private=True, https_only=False, timeout=0.3)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() then joins every handler thread

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[str] = []
        self.stop = threading.Event()
        self.server_names: list[str | None] = []

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 5
    server: _Server

    def setup(self) -> None:
        self.server.connections += 1
        super().setup()

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        try:
            ROUTES[urlsplit(self.path).path](self)
        except OSError:  # the client gave up, as the fetcher is meant to
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send(self, body: bytes, status: int = 200, /, **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)


def _json(cache_control: str | None) -> Callable[[_Handler], None]:
    extra = {} if cache_control is None else {"Cache_Control": cache_control}
    return lambda h: h.send(json.dumps(JWKS).encode(), **extra)


def _chunked(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for _ in range(25):
        h.wfile.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def _until_close(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Connection", "close")
    h.end_headers()
    h.wfile.write(b"x" * 100_000)
    h.close_connection = True


def _slow(h: _Handler) -> None:
    h.server.stop.wait(3)
    _json(None)(h)


def _trickle(h: _Handler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "60")
    h.end_headers()
    for _ in range(60):  # each read is quick; only the total bound stops it
        h.wfile.write(b" ")
        h.wfile.flush()
        if h.server.stop.wait(0.05):
            return


def _slowish(h: _Handler) -> None:
    time.sleep(0.1)
    _json("max-age=60")(h)


ROUTES: dict[str, Callable[[_Handler], None]] = {
    "/jwks": _json("public, max-age=60"),
    "/plain": _json(None),
    "/nostore": _json("no-store"),
    "/long": _json("max-age=999999"),
    "/slowish": _slowish,
    "/redirect": lambda h: h.send(b"", 302, Location="/jwks"),
    "/big-length": lambda h: h.send(b"x" * 100_000),
    "/big-chunked": _chunked,
    "/big-close": _until_close,
    "/slow": _slow,
    "/trickle": _trickle,
    "/not-json": lambda h: h.send(b"hello"),
    "/array": lambda h: h.send(b"[]"),
    "/no-keys": lambda h: h.send(b'{"foo": 1}'),
    "/bad-keys": lambda h: h.send(b'{"keys": [1]}'),
    "/error": lambda h: h.send(b"{}", 500),
}


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()
    thread.join()


def _fetch(url: str, policy: FetchPolicy = LAB, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(fetch_jwks(url, policy, **kwargs)).jwks


def _refused(url: str, policy: FetchPolicy = LAB, **kwargs: Any) -> str:
    with pytest.raises(JwksFetchError) as caught:
        _fetch(url, policy, **kwargs)
    return str(caught.value)


# --- The address check ----------------------------------------------------------------

PRIVATE = [
    "10.0.0.1", "172.16.0.1", "192.168.1.1", "127.0.0.1", "::1", "fe80::1",
    "169.254.169.254", "100.64.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1", "224.0.0.1",
    "ff02::1", "fc00::1", "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.0.170",
    "2002:7f00:1::1", "64:ff9b::a00:1", "::ffff:10.0.0.1", "192.0.2.1", "2001:db8::1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", PRIVATE)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


# --- Fetching -------------------------------------------------------------------------


def test_fetch_works_when_private_addresses_are_allowed(server: _Server) -> None:
    fetched = asyncio.run(fetch_jwks(server.url("/jwks"), LAB))
    assert fetched.jwks == JWKS
    assert fetched.max_age == 60
    assert server.requests == ["/jwks"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "2130706433"])
def test_loopback_is_refused_before_any_connection(server: _Server, host: str) -> None:
    policy = FetchPolicy(https_only=False, timeout=0.3)
    assert _refused(server.url("/jwks", host=host), policy) == "address not allowed"
    assert server.connections == 0


def test_http_is_refused_by_default(server: _Server) -> None:
    policy = FetchPolicy(allow_private=True)
    assert _refused(server.url("/jwks"), policy) == "URL scheme not allowed"
    assert server.connections == 0


@pytest.mark.parametrize(
    "url", ["ftp://h/x", "file:///etc/passwd", "http://u:p@h/x", "http://h:99999/", "http:///x"]
)
def test_malformed_or_foreign_urls_are_refused(url: str) -> None:
    _refused(url)


@pytest.mark.parametrize(("path", "status"), [("/redirect", 302), ("/error", 500)])
def test_redirects_and_errors_are_refused(server: _Server, path: str, status: int) -> None:
    assert _refused(server.url(path)) == f"HTTP status {status}"
    assert server.requests == [path]  # the redirect was not followed


@pytest.mark.parametrize("path", ["/big-length", "/big-chunked", "/big-close"])
def test_oversize_bodies_are_refused(server: _Server, path: str) -> None:
    assert _refused(server.url(path)) == "response too large"


@pytest.mark.parametrize("path", ["/slow", "/trickle"])
def test_total_time_is_bounded(server: _Server, path: str) -> None:
    started = time.monotonic()
    assert _refused(server.url(path)).startswith("fetch failed")
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("path", ["/not-json", "/array", "/no-keys", "/bad-keys"])
def test_anything_but_a_jwk_set_is_refused(server: _Server, path: str) -> None:
    assert _refused(server.url(path)).startswith("response")


def test_a_closed_port_is_a_fetch_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _refused(f"http://127.0.0.1:{port}/jwks").startswith("fetch failed")


# --- Resolution: the address vetted is the address connected to ------------------------


def _resolver(*answers: Sequence[str]) -> tuple[list[str], Any]:
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    return calls, resolve


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded")


def test_a_name_is_connected_through_the_address_it_resolved_to(server: _Server) -> None:
    calls, resolve = _resolver(["127.0.0.1"])
    assert _fetch(server.url("/jwks", host="jwks.invalid"), resolver=resolve) == JWKS
    assert calls == ["jwks.invalid"]
    assert server.connections == 1


def _connect(*answers: Sequence[str]) -> tuple[list[str], list[str], BaseException]:
    """Connect to jwks.example through a guard whose resolver gives ``answers`` in turn."""
    calls, resolve = _resolver(*answers)
    inner = _RecordingBackend()
    backend = GuardedNetworkBackend(FetchPolicy(), resolver=resolve, inner=inner)
    with pytest.raises((JwksFetchError, httpcore.ConnectError)) as caught:
        asyncio.run(backend.connect_tcp("jwks.example", 443))
    return calls, inner.hosts, caught.value


def test_rebinding_cannot_move_the_connection() -> None:
    calls, connected, error = _connect(["8.8.8.8"], ["127.0.0.1"])
    assert (calls, connected) == (["jwks.example"], ["8.8.8.8"])
    assert isinstance(error, httpcore.ConnectError)


def test_one_bad_address_refuses_the_name() -> None:
    _, connected, error = _connect(["8.8.8.8", "127.0.0.1"])
    assert (connected, str(error)) == ([], "address not allowed")


def _tls_server(server: _Server, tmp_path: Path, name: str) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder(subject_name=subject, issuer_name=subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp_path / "key.pem").write_bytes(pem)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    def remember(_sock: object, sni: str | None, _ctx: ssl.SSLContext) -> None:
        server.server_names.append(sni)

    served.sni_callback = remember
    server.socket = served.wrap_socket(server.socket, server_side=True)
    return ssl.create_default_context(cafile=tmp_path / "cert.pem")


def test_tls_verifies_the_url_host_while_connecting_to_the_vetted_address(
    server: _Server, tmp_path: Path
) -> None:
    trust = _tls_server(server, tmp_path, "jwks.test")
    _, resolve = _resolver(["127.0.0.1"])
    policy = FetchPolicy(allow_private=True, timeout=2)
    url = server.url("/jwks", host="jwks.test", scheme="https")
    assert _fetch(url, policy, resolver=resolve, ssl_context=trust) == JWKS
    assert server.server_names == ["jwks.test"]
    other = server.url("/jwks", host="other.test", scheme="https")
    assert "ConnectError" in _refused(other, policy, resolver=resolve, ssl_context=trust)
    assert server.requests == ["/jwks"]


# --- The cache ------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _cache(**kwargs: Any) -> tuple[JwksCache, _Clock]:
    clock = _Clock()
    return JwksCache(LAB, now=clock, **kwargs), clock


def _get(cache: JwksCache, url: str, *, force: bool = False) -> dict[str, Any]:
    return asyncio.run(cache.get(url, force=force))


@pytest.mark.parametrize(("path", "max_age"), [("/jwks", 60), ("/plain", 300), ("/long", 3600)])
def test_cache_follows_max_age(server: _Server, path: str, max_age: int) -> None:
    cache, clock = _cache()
    assert _get(cache, server.url(path)) == JWKS
    clock.t += max_age - 1
    assert _get(cache, server.url(path)) == JWKS
    assert len(server.requests) == 1
    clock.t += 2
    assert _get(cache, server.url(path)) == JWKS
    assert len(server.requests) == 2


def test_no_store_is_refetched_but_not_faster_than_min_refetch(server: _Server) -> None:
    cache, clock = _cache()
    _get(cache, server.url("/nostore"))
    clock.t += 5
    _get(cache, server.url("/nostore"))
    assert len(server.requests) == 1
    clock.t += 6
    _get(cache, server.url("/nostore"))
    assert len(server.requests) == 2


def test_forced_refetch_is_rate_limited(server: _Server) -> None:
    cache, clock = _cache()
    _get(cache, server.url("/jwks"))
    clock.t += 5
    assert _get(cache, server.url("/jwks"), force=True) == JWKS
    assert len(server.requests) == 1
    clock.t += 6
    _get(cache, server.url("/jwks"), force=True)
    assert len(server.requests) == 2


def test_a_failure_is_remembered_for_min_refetch(server: _Server) -> None:
    cache, clock = _cache()
    for step in (0, 1, 10):
        clock.t += step
        with pytest.raises(JwksFetchError):
            _get(cache, server.url("/not-json"), force=True)
    assert len(server.requests) == 2


def test_concurrent_gets_share_one_fetch(server: _Server) -> None:
    cache, _ = _cache()

    async def many() -> list[dict[str, Any]]:
        return await asyncio.gather(*(cache.get(server.url("/slowish")) for _ in range(5)))

    assert asyncio.run(many()) == [JWKS] * 5
    assert len(server.requests) == 1


def test_the_oldest_url_is_evicted(server: _Server) -> None:
    cache, _ = _cache(max_entries=2)
    for query in ("a", "b", "c", "b", "a"):
        _get(cache, server.url(f"/jwks?{query}"))
    assert server.requests == ["/jwks?a", "/jwks?b", "/jwks?c", "/jwks?a"]


def test_callers_cannot_change_the_cached_value(server: _Server) -> None:
    cache, _ = _cache()
    _get(cache, server.url("/jwks"))["keys"].clear()
    assert _get(cache, server.url("/jwks")) == JWKS
