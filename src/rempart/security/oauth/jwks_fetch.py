"""Fetch a client's registered JWK Set without letting the fetch reach inside the network.

SMART App Launch 2.2, Backend Services, §Registering a SMART Backend Service: a client
may register "a URL to a JSON Web Key Set"; the server fetches it to verify the
client's signed authentication JWT (RFC 7523 §3, RFC 7517 §5 for the JWK Set format).

The URL is chosen by the client, so the fetch is a server-side request forgery risk
(OWASP SSRF Prevention Cheat Sheet). The guard lives in the network backend: it
resolves the host itself, refuses if any address is not public, and connects to the
vetted address, so a DNS answer that changes between check and connect (rebinding)
cannot move the connection. TLS still verifies the certificate against the URL's host
name, because httpcore calls ``start_tls`` with ``server_hostname`` set to the URL host.
No redirects, no proxies (httpcore reads no proxy environment), bounded time and size.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

import httpcore
import orjson

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
Fetcher = Callable[[str], Awaitable["FetchedJwks"]]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NETWORK_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    TimeoutError,
    OSError,
)


@dataclass(frozen=True)
class FetchPolicy:
    """Limits on fetching a JWK Set. The defaults are the safe ones."""

    allow_private: bool = False
    """Allow non-public addresses (private, loopback, link-local...). Tests and labs only."""
    https_only: bool = True
    """Refuse ``http`` URLs."""
    timeout: float = 5.0
    """Seconds for the whole fetch: resolution, connection, TLS, headers and body."""
    max_bytes: int = 64 * 1024
    """Largest body accepted."""
    max_age_cap: int = 3600
    """Longest time, in seconds, a JWK Set is cached, whatever Cache-Control says."""
    default_max_age: int = 300
    """Seconds a JWK Set is cached when the response gives no max-age."""
    min_refetch: float = 10.0
    """Least seconds between two fetches of one URL, forced, uncacheable or failed."""


class JwksFetchError(Exception):
    """The JWK Set could not be fetched. The reason is for the log, never for the client."""


@dataclass(frozen=True)
class FetchedJwks:
    """A validated JWK Set and the seconds it may be cached."""

    jwks: dict[str, Any]
    max_age: int


# --- Which addresses may be reached -------------------------------------------------


def is_public_address(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address.

    IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by it;
    Python 3.11 does not, e.g. ``::ffff:127.0.0.1`` is not ``is_loopback`` there.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_public_address(embedded)
    special = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
    special = special or ip.is_reserved or ip.is_unspecified
    # is_global excludes the CGNAT 100.64.0.0/10 range that is_private misses.
    return ip.is_global and not special


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _vet(addresses: Iterable[str], policy: FetchPolicy) -> list[str]:
    """Return the addresses if every one may be reached; any bad one refuses them all."""
    vetted = list(dict.fromkeys(addresses))
    if not vetted:
        raise JwksFetchError("host has no address")
    for text in vetted:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise JwksFetchError("unparsable address") from None
        if not policy.allow_private and not is_public_address(ip):
            raise JwksFetchError("address not allowed")
    return vetted


async def system_resolve(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver, as the connection would."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise JwksFetchError("host name does not resolve") from None
    return [str(info[4][0]) for info in infos]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore backend that only connects to addresses it has resolved and vetted."""

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolve
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._addresses(host, port)
        last_error: Exception = JwksFetchError("no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def _addresses(self, host: str, port: int) -> list[str]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            return _vet(await self._resolve(host, port), self._policy)
        return _vet([str(literal)], self._policy)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise JwksFetchError("unix sockets not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# --- One fetch ----------------------------------------------------------------------


async def fetch_jwks(
    url: str,
    policy: FetchPolicy,
    *,
    resolver: Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> FetchedJwks:
    """Fetch and validate the JWK Set at ``url``, or raise JwksFetchError.

    ``ssl_context`` lets an establishment trust its own CA; the default verifies
    against the system store.
    """
    parts = _check_url(url, policy)
    backend = GuardedNetworkBackend(policy, resolver=resolver)
    try:
        async with asyncio.timeout(policy.timeout):
            body, headers = await _get(url, parts, policy, backend, ssl_context)
    except _NETWORK_ERRORS as exc:
        raise JwksFetchError(f"fetch failed: {type(exc).__name__}") from None
    return FetchedJwks(_parse_jwks(body), _max_age(headers, policy))


def _check_url(url: str, policy: FetchPolicy) -> SplitResult:
    if not url.isascii() or any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        raise JwksFetchError("malformed URL")
    parts = urlsplit(url)
    schemes = ("https",) if policy.https_only else ("https", "http")
    if parts.scheme not in schemes:
        raise JwksFetchError("URL scheme not allowed")
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise JwksFetchError("URL host missing or carries credentials")
    try:
        _ = parts.port  # urlsplit checks the port only when asked
    except ValueError:
        raise JwksFetchError("malformed URL port") from None
    return parts


async def _get(
    url: str,
    parts: SplitResult,
    policy: FetchPolicy,
    backend: GuardedNetworkBackend,
    ssl_context: ssl.SSLContext | None,
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    headers = [(b"Host", parts.netloc.encode()), (b"Accept", b"application/json")]
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), policy.timeout)
    async with (
        httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, network_backend=backend, max_connections=1, retries=0
        ) as pool,
        pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as response,
    ):
        if response.status != 200:  # redirects included: they are never followed
            raise JwksFetchError(f"HTTP status {response.status}")
        _check_length(response.headers, policy)
        body = await _read_bounded(response, policy.max_bytes)
    return body, response.headers


def _check_length(headers: list[tuple[bytes, bytes]], policy: FetchPolicy) -> None:
    for name, value in headers:
        if name.lower() != b"content-length":
            continue
        if not value.strip().isdigit():
            raise JwksFetchError("malformed Content-Length")
        if int(value) > policy.max_bytes:
            raise JwksFetchError("response too large")


async def _read_bounded(response: httpcore.Response, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_stream():
        size += len(chunk)
        if size > max_bytes:
            raise JwksFetchError("response too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_jwks(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise JwksFetchError("response is not JSON") from None
    if not isinstance(document, dict):
        raise JwksFetchError("response is not a JSON object")
    keys = document.get("keys")
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise JwksFetchError("response has no list of keys")
    return document


def _max_age(headers: list[tuple[bytes, bytes]], policy: FetchPolicy) -> int:
    """Seconds to cache, from Cache-Control (RFC 9111 §5.2.2); the smallest max-age wins."""
    values = [v.decode("latin-1") for n, v in headers if n.lower() == b"cache-control"]
    ages: list[int] = []
    for directive in ",".join(values).split(","):
        name, _, argument = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0
        argument = argument.strip().strip('"')
        if name == "max-age" and argument.isdigit():
            ages.append(int(argument))
    return min([*ages, policy.max_age_cap]) if ages else policy.default_max_age


# --- The cache ----------------------------------------------------------------------


@dataclass
class _Entry:
    jwks: dict[str, Any] | None
    expires_at: float
    attempted_at: float
    failed: bool


class _Gate:
    """A per-URL lock that knows how many tasks hold or await it, so it can be dropped."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class JwksCache:
    """JWK Sets by URL, cached per Cache-Control and refetched at most every min_refetch.

    Concurrent gets of one URL share one fetch. A failed fetch is remembered for
    min_refetch too, so a slow or broken URL cannot be made to cost a fetch per request.
    """

    def __init__(
        self,
        policy: FetchPolicy,
        *,
        now: Callable[[], float] = time.monotonic,
        max_entries: int = 1000,
        fetch: Fetcher | None = None,
    ) -> None:
        self._policy = policy
        self._now = now
        self._max_entries = max_entries
        self._fetch: Fetcher = fetch or (lambda url: fetch_jwks(url, policy))
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._gates: dict[str, _Gate] = {}

    async def get(self, url: str, *, force: bool = False) -> dict[str, Any]:
        """The JWK Set at ``url``; ``force`` (for an unknown ``kid``) asks for a refetch."""
        gate = self._gates.setdefault(url, _Gate())
        gate.users += 1
        try:
            async with gate.lock:
                return copy.deepcopy(await self._get_locked(url, force))
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[url]

    async def _get_locked(self, url: str, force: bool) -> dict[str, Any]:
        entry = self._entries.get(url)
        if entry is not None:
            cached = self._serve(entry, force)
            if cached is not None:
                return cached
        return await self._refresh(url, entry)

    def _serve(self, entry: _Entry, force: bool) -> dict[str, Any] | None:
        """The cached value, None to fetch, or an error while a failure is recent."""
        now = self._now()
        fresh = entry.jwks is not None and now < entry.expires_at
        if fresh and not force:
            return entry.jwks
        if now - entry.attempted_at >= self._policy.min_refetch:
            return None
        if entry.jwks is not None and (fresh or not entry.failed):
            return entry.jwks
        raise JwksFetchError("recent fetch failed")

    async def _refresh(self, url: str, entry: _Entry | None) -> dict[str, Any]:
        try:
            fetched = await self._fetch(url)
        except JwksFetchError:
            old = entry or _Entry(None, 0.0, 0.0, True)
            self._store(url, _Entry(old.jwks, old.expires_at, self._now(), True))
            raise
        now = self._now()
        self._store(url, _Entry(fetched.jwks, now + fetched.max_age, now, False))
        return fetched.jwks

    def _store(self, url: str, entry: _Entry) -> None:
        self._entries[url] = entry
        self._entries.move_to_end(url)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
