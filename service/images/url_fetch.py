"""Fetch an image from a client-supplied URL without letting the URL reach inside the network.

A URL in a request body makes the server a client of whoever wrote it (server-side request
forgery, https://owasp.org/www-community/attacks/Server_Side_Request_Forgery). The defences,
in the order a fetch meets them:

1. Off unless ``EDGE_IMAGE_URLS=true``; when ``EDGE_IMAGE_URL_ALLOWED_HOSTS`` is set, only
   those hosts are fetched at all.
2. ``http``/``https`` only, no credentials in the URL, a plain host name or IP literal.
3. The host is resolved once, here. Every address it resolves to must be global unicast
   (``refusal_reason``): loopback, private, shared (CGNAT), link-local (cloud metadata at
   169.254.169.254), multicast, reserved, unspecified, documentation, and IPv6 forms that
   embed such an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) are refused.
   Numeric hosts are read the way the C resolver reads them (``inet_aton``: decimal
   ``2130706433``, octal ``0177.0.0.1``, hex ``0x7f.1``, short ``127.1``), so no spelling
   slips past. An allowlisted host may resolve to a non-global address (an internal bucket).
4. The connection goes to the vetted address and nowhere else: the httpx transport's network
   backend is pinned to it (no second lookup, so DNS rebinding cannot swap the address), while
   the Host header, TLS SNI and certificate check keep the URL's name.
5. Redirects are not followed by httpx; each ``Location`` goes through steps 2-4 again, at
   most ``max_redirects`` times.
6. Connect and total timeouts; the body is streamed and cut at the same byte cap as an upload;
   the response must say it is an image (``image/*``, or a generic binary type whose bytes the
   decoder then checks).

``httpx`` is imported on the first fetch only: the cold start of a service that never fetches
a URL does not pay for it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from service.errors import PayloadTooLarge, ServiceError, UnsupportedImage

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable
    from typing import Any

    import httpcore
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Content types accepted besides image/*: object stores often label uploads generically.
GENERIC_BINARY_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
ENABLE_HINT = "set EDGE_IMAGE_URLS=true (and EDGE_IMAGE_URL_ALLOWED_HOSTS to restrict the hosts)"

# After IDNA encoding a host name is ASCII letters, digits, hyphens and dots. Anything else
# ('%', '_', spaces) is refused before it reaches a resolver.
_HOST_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62})(?:\.[a-z0-9-]{1,63})*$")
# What inet_aton may read as an IPv4 address: 1-4 dot-separated decimal, octal or hex parts.
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")

# IPv4 blocks that ipaddress still calls global but that no image host lives in.
_EXTRA_REFUSED_V4 = (
    (ipaddress.IPv4Network("192.88.99.0/24"), "a deprecated 6to4 relay anycast address (RFC 7526)"),
)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


class ImageUrlRefused(ServiceError):
    """400: the URL is not fetched (scheme, credentials, host, or a non-global address)."""

    status_code = 400


class ImageUrlsDisabled(ServiceError):
    """400: the request sent an ``image_url`` but URL fetching is off."""

    status_code = 400


class UpstreamFailed(ServiceError):
    """502: the image host could not be reached, answered an error, or redirected too often."""

    status_code = 502


class UpstreamTimeout(ServiceError):
    """504: the image host did not answer within the connect or total timeout."""

    status_code = 504


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched and how long it may take.

    Attributes:
        enabled: fetch URLs at all (``EDGE_IMAGE_URLS``).
        allowed_hosts: when non-empty, the only hosts fetched (names lower-case, IPs in
            canonical form; see ``normalize_allowed_host``). These may resolve to
            non-global addresses.
        max_bytes: largest body accepted, in bytes (the upload limit).
        connect_timeout: seconds to open the TCP (and TLS) connection, per hop.
        total_timeout: seconds for the whole fetch: resolution, redirects and body.
        max_redirects: redirects followed (each one vetted again).
        ssl_context: certificates trusted for https; ``None`` = the system's defaults via httpx
            (certifi). Tests pass a context trusting their own CA.
    """

    enabled: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    max_bytes: int = 6 * 1024 * 1024
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    max_redirects: int = MAX_REDIRECTS
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)


@dataclass(frozen=True)
class VettedTarget:
    """A URL that passed the checks, and the one address it will be fetched from."""

    url: httpx.URL
    host: str  # as httpx sends it to the network backend (ASCII, lower-case)
    address: IPAddress


def normalize_allowed_host(host: str) -> str:
    """Canonical form of an allowlist entry or URL host, so spellings of one host compare equal.

    Names are lower-cased without a trailing dot; IP literals (any IPv4 spelling, IPv6 with
    or without brackets) become ``ipaddress``'s canonical text.
    """
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    literal = _ip_literal(host)
    return str(literal) if literal is not None else host


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from, or ``None`` for a global unicast address.

    Uses the IANA special-purpose registries as ``ipaddress`` encodes them (``is_global``),
    plus explicit checks for what ``is_global`` lets through: IPv6 that embeds an IPv4
    address (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, 6to4 ``2002::/16``, NAT64
    ``64:ff9b::/96``) is judged by that IPv4 address or refused, and deprecated site-local
    IPv6 (``fec0::/10``) is refused.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "an IPv6 address with a zone index"
        mapped = address.ipv4_mapped
        if mapped is not None:
            inner = refusal_reason(mapped)
            return f"an IPv4-mapped IPv6 address of {inner}" if inner else None
        if int(address) >> 32 == 0 and int(address) > 1:
            return "an IPv4-compatible IPv6 address (deprecated, RFC 4291)"
        if address.sixtofour is not None:
            inner = refusal_reason(address.sixtofour)
            return f"a 6to4 address of {inner}" if inner else None
        for nat64 in _NAT64:
            if address in nat64:
                inner = refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
                return f"a NAT64 address of {inner}" if inner else None
        if address.teredo is not None:
            return "a Teredo tunnel address"
        if address.is_site_local:
            return "a site-local IPv6 address"
    else:
        for network, why in _EXTRA_REFUSED_V4:
            if address in network:
                return why
    checks = (
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata lives there)"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private-network address"),
        (not address.is_global, "not a global address"),
    )
    return next((f"{address} is {why}" for refused, why in checks if refused), None)


def check_url(raw: str, policy: UrlPolicy) -> httpx.URL:
    """Parse ``raw`` and apply every check that needs no name resolution.

    Raises:
        ImageUrlsDisabled: URL fetching is off.
        ImageUrlRefused: not http(s), credentials present, bad or non-allowlisted host.
    """
    import httpx

    if not policy.enabled:
        raise ImageUrlsDisabled(f"image URLs are disabled on this server; to enable them {ENABLE_HINT}")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ImageUrlRefused(f"image_url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ImageUrlRefused(f"image_url must be http or https, not {url.scheme or 'relative'!r}")
    if url.userinfo:
        raise ImageUrlRefused("image_url must not carry credentials (user:password@)")
    host = url.raw_host.decode("ascii").lower()
    if not host:
        raise ImageUrlRefused("image_url has no host")
    if url.port == 0:
        raise ImageUrlRefused("image_url has port 0")
    if ":" not in host and _ip_literal(host) is None and not _HOST_NAME.match(host.rstrip(".")):
        raise ImageUrlRefused(f"image_url host {host!r} is not a valid host name")
    if policy.allowed_hosts and normalize_allowed_host(host) not in policy.allowed_hosts:
        raise ImageUrlRefused(
            f"image_url host {url.host!r} is not in EDGE_IMAGE_URL_ALLOWED_HOSTS on this server"
        )
    return url


async def vet_url(raw: str, policy: UrlPolicy) -> VettedTarget:
    """``check_url``, then resolve the host once and vet every address it resolves to.

    Raises:
        ImageUrlsDisabled, ImageUrlRefused: see ``check_url``; also a host resolving to a
            non-global address while not allowlisted (named in the detail).
        UpstreamFailed: the name does not resolve.
    """
    url = check_url(raw, policy)
    host = url.raw_host.decode("ascii").lower()
    port = url.port or (443 if url.scheme == "https" else 80)
    allowlisted = bool(policy.allowed_hosts)  # check_url already refused hosts not on the list
    name = host.rstrip(".")
    if not allowlisted and (name == "localhost" or name.endswith(".localhost")):
        # RFC 6761: always loopback; refused by name, without asking a resolver.
        raise ImageUrlRefused(f"image_url host {url.host!r} refused: localhost is a loopback name")
    addresses = await _resolve(name, port)
    if not allowlisted:
        # One bad address refuses the host: a name pointing both outside and inside is an attack.
        for address in addresses:
            reason = refusal_reason(address)
            if reason:
                raise ImageUrlRefused(f"image_url host {url.host!r} refused: {reason}")
    return VettedTarget(url=url, host=host, address=addresses[0])


async def fetch_image(raw: str, policy: UrlPolicy) -> bytes:
    """Download the image at ``raw`` under ``policy``.

    Returns:
        The response body, at most ``policy.max_bytes`` bytes (not yet decoded as an image).

    Raises:
        ImageUrlsDisabled, ImageUrlRefused (400): see ``vet_url``, for the URL and each redirect.
        PayloadTooLarge (413): the body is over ``policy.max_bytes``.
        UnsupportedImage (415): the response's Content-Type is not an image.
        UpstreamFailed (502): unreachable host, non-2xx answer, TLS failure, too many redirects.
        UpstreamTimeout (504): connect timeout, or the whole fetch over ``total_timeout``.
    """
    import httpx

    try:
        with anyio.fail_after(policy.total_timeout):
            target = await vet_url(raw, policy)
            for _hop in range(policy.max_redirects + 1):
                location = await _fetch_once(target, policy)
                if isinstance(location, bytes):
                    return location
                target = await vet_url(str(location), policy)
            raise UpstreamFailed(f"image_url redirected more than {policy.max_redirects} times")
    except TimeoutError:
        raise UpstreamTimeout(
            f"image_url did not answer within {policy.total_timeout:g} s (total timeout)"
        ) from None
    except httpx.TimeoutException:
        raise UpstreamTimeout(
            f"image_url did not answer within {policy.connect_timeout:g} s (connect/read timeout)"
        ) from None
    except httpx.HTTPError as exc:
        raise UpstreamFailed(f"image_url could not be fetched: {_describe(exc)}") from None


async def _fetch_once(target: VettedTarget, policy: UrlPolicy) -> bytes | httpx.URL:
    """One GET to the pinned address: the body, or the next URL when redirected."""
    import httpx

    timeout = httpx.Timeout(policy.total_timeout, connect=policy.connect_timeout)
    transport = _pinned_transport(target.host, str(target.address), policy.ssl_context)
    headers = {"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "edge-infer image fetch"}
    async with (
        httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False) as client,
        client.stream("GET", target.url, headers=headers) as response,
    ):
        if response.status_code in REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                raise UpstreamFailed(f"image_url answered {response.status_code} without a Location")
            return target.url.join(location)
        if not response.is_success:
            raise UpstreamFailed(f"image_url answered HTTP {response.status_code}")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (content_type.startswith("image/") or content_type in GENERIC_BINARY_TYPES):
            raise UnsupportedImage(f"image_url returned {content_type or 'no content type'}, not an image")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > policy.max_bytes:
            raise PayloadTooLarge(f"image at image_url is {declared} bytes; limit is {policy.max_bytes}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > policy.max_bytes:
                raise PayloadTooLarge(f"image at image_url exceeds the limit of {policy.max_bytes} bytes")
        return bytes(body)


def _pinned_transport(
    host: str, address: str, ssl_context: ssl.SSLContext | None
) -> httpx.AsyncBaseTransport:
    """An httpx transport whose every TCP connection goes to ``address``, and only for ``host``.

    httpx exposes no public hook for the connection pool's network backend, so this builds the
    pool the way ``AsyncHTTPTransport.__init__`` does, with the pinned backend. TLS still uses
    ``host`` for SNI and certificate checks: httpcore takes those from the URL, not the socket.
    """
    import httpcore
    import httpx

    context = ssl_context or _default_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False, retries=0)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, max_connections=1, retries=0, network_backend=_pinned_backend(host, address)
    )
    return transport


def _pinned_backend(vetted_host: str, address: str) -> httpcore.AsyncNetworkBackend:
    """A network backend that connects to ``address`` when asked for ``vetted_host``, else refuses."""
    import httpcore

    class PinnedBackend(httpcore.AsyncNetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.AnyIOBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore.AsyncNetworkStream:
            if host.lower() != vetted_host:
                # Never reached through fetch_image; refuses rather than resolving a new name.
                raise httpcore.ConnectError(f"{host} was not vetted")
            return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

        async def connect_unix_socket(
            self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
        ) -> httpcore.AsyncNetworkStream:
            raise httpcore.ConnectError("unix sockets are not fetched")

        async def sleep(self, seconds: float) -> None:
            await self._inner.sleep(seconds)

    return PinnedBackend()


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context(trust_env=False)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` stands for: the literal itself, or what the resolver returns."""
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    try:
        infos = await anyio.to_thread.run_sync(
            functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM),
            abandon_on_cancel=True,
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise UpstreamFailed(f"image_url host {host!r} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise UpstreamFailed(f"image_url host {host!r} resolves to no address")
    return addresses


def _ip_literal(host: str) -> IPAddress | None:
    """The address a numeric host means, in any spelling the C resolver accepts; else None."""
    host = host.rstrip(".")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.replace("%25", "%"))
        except ValueError:
            return None
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
