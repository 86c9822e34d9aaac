"""Outbound HTTP to URLs our users give us, without server-side request forgery.

Two guards. When a URL is saved, ``check_url`` refuses other schemes than http(s), credentials in the
URL, and hosts that are (or resolve to) loopback, private, link-local and other non-public addresses.
That check alone is not enough: DNS may answer differently later ("DNS rebinding"). So the requests
themselves go through ``GuardedBackend``, an httpcore network backend that resolves the host, refuses
the connection if ANY address is not public, and connects to one of the addresses it checked (never
resolving again). TLS still verifies the certificate for, and sends SNI with, the URL's host name,
since httpcore takes those from the URL rather than from the address connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "THREADLINE_WEBHOOK_ALLOW_PRIVATE_URLS"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class BadURL(ValueError):
    """A URL that cannot be used at all (wrong scheme, no host, credentials)."""


class ForbiddenURL(BadURL):
    """A URL that points (or resolves) into a loopback, private or otherwise non-public network."""


class AddressRefused(httpcore.ConnectError):
    """A connection refused by the guard: the host resolved to a non-public address."""


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is no place for a request from our servers to go, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:  # the IPv4 address it reaches decides
            return address_problem(embedded)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if ip.is_private:
        return "a private-network address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved or not ip.is_global:
        return "not a public address"
    return None


def parse_url(url: str) -> httpx.URL:
    """``url`` parsed, or BadURL saying what is wrong with it."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise BadURL(f"not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise BadURL("must be an http:// or https:// URL")
    if not parsed.host:
        raise BadURL("has no host")
    if parsed.userinfo:
        raise BadURL("must not carry credentials (user:password@); receivers check deliveries by their signature")
    return parsed


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _forbidden(subject: str, problem: str) -> ForbiddenURL:
    return ForbiddenURL(
        f"{subject} {problem}; URLs into loopback, private or link-local networks are refused "
        f"(an operator can allow them with {ALLOW_SETTING}=true)"
    )


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, in the resolver's order, without repeats (OSError if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _check_addresses(host: str, addresses: Iterable[str]) -> None:
    for address in addresses:
        ip = _literal(address)
        problem = address_problem(ip) if ip is not None else "not an IP address"
        if problem is not None:
            raise _forbidden(f"{host} resolves to {address},", problem)


async def check_url(url: str, *, allow_private: bool, resolve_timeout_s: float = 1.0) -> httpx.URL:
    """Refuse (BadURL/ForbiddenURL) what ``url`` must not be; returns it parsed.

    A host name is resolved (for at most ``resolve_timeout_s``) and every address checked. A name that
    does not resolve now is accepted: the connect-time guard checks it again on every connection.
    """
    parsed = parse_url(url)
    if allow_private:
        return parsed
    host = parsed.raw_host.decode("ascii")
    literal = _literal(host)
    if literal is not None:
        if (problem := address_problem(literal)) is not None:
            raise _forbidden(f"{host} is", problem)
        return parsed
    name = host.rstrip(".").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        raise _forbidden(f"{host} is", "a loopback name")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = await asyncio.wait_for(resolve(host, port), resolve_timeout_s)
    except (OSError, TimeoutError, UnicodeError):
        return parsed
    _check_addresses(host, addresses)
    return parsed


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to public addresses (unless ``allow_private``).

    It resolves the host itself, checks every address, then connects to the checked addresses in turn,
    so no second resolution can swap in another address between the check and the connect.
    """

    def __init__(self, *, allow_private: bool = False) -> None:
        self.allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {getattr(exc, 'strerror', None) or exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no address")
        if not self.allow_private:
            try:
                _check_addresses(host, addresses)
            except ForbiddenURL as exc:
                raise AddressRefused(f"refused to connect: {exc}") from None
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_ssl_context: ssl.SSLContext | None = None


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on an httpcore pool whose network backend refuses non-public addresses (httpx
    does not take a network backend, so the pool it made is replaced by one that has it)."""

    def __init__(self, *, allow_private: bool) -> None:
        global _ssl_context
        if _ssl_context is None:
            _ssl_context = httpx.create_ssl_context()  # loading the CA bundle takes milliseconds: once
        super().__init__(verify=_ssl_context, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context,
            max_connections=4,
            retries=0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )
