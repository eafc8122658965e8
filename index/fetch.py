"""A careful HTTP GET for feeds and article pages: bounded in time, size and redirects,
conditional (ETag / Last-Modified), and refusing private addresses (SSRF guard)."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

USER_AGENT = "newsbot/0.1 (+https://github.com/newsbot/newsbot; news feed reader)"
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
    "text/html;q=0.8, */*;q=0.5"
)
_REDIRECTS = {301, 302, 303, 307, 308}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A URL that could not be fetched; the message is one line a user can read."""


@dataclass(frozen=True)
class FetchResult:
    """One response, after redirects. `content` is empty when `not_modified` (HTTP 304)."""

    status: int
    final_url: str
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-case ("" when the server sent none)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def non_public_reason(ip: IPAddress) -> str | None:
    """Why an address must not be fetched from ("loopback", "private", …), or None if public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for label, flagged in checks:
        if flagged:
            return label
    return None if ip.is_global else "non-public"


def resolve_checked(host: str, port: int, *, allow_private: bool = False) -> list[str]:
    """Resolve `host`; refuse it if any address is not public (unless `allow_private`).
    An IP literal is checked as is, without any DNS query."""
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise FetchError(f"cannot resolve host {host}") from None
        addresses = list(
            dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
        )
    if not allow_private:
        for ip in addresses:
            if reason := non_public_reason(ip):
                named = "" if str(ip) == host.strip("[]") else f" ({host})"
                raise FetchError(f"refusing {reason} address {ip}{named}")
    return [str(ip) for ip in addresses]


def check_url(url: str, *, allow_private: bool = False) -> None:
    """Raise FetchError unless `url` is http(s) with a host whose addresses are all public."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchError(f"unsupported URL scheme {scheme or 'none'!r}: only http and https")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise FetchError(f"invalid port in {url}") from None
    if not parts.hostname:
        raise FetchError(f"no host in {url}")
    if not allow_private:
        resolve_checked(parts.hostname, port)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses that passed the check, at the moment of connecting,
    so DNS that changes between the check and the connection (rebinding) gains nothing."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow_private = allow_private

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        last: httpcore.ConnectError | None = None
        for ip in resolve_checked(host, port, allow_private=self._allow_private):
            try:
                return self._inner.connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise FetchError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def make_client(
    *, allow_private: bool = False, timeout: float = 10.0, user_agent: str = USER_AGENT
) -> httpx.Client:
    """An httpx client whose every connection goes through the private-address guard.
    Environment proxies are ignored: a proxy would connect on our behalf, unchecked."""
    transport = httpx.HTTPTransport()
    # httpx has no public hook for the network backend; its pool is replaced by an
    # equivalent one that connects through the guard.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=20,
        max_keepalive_connections=10,
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(allow_private),
    )
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        headers={"User-Agent": user_agent, "Accept": ACCEPT},
        follow_redirects=False,
        trust_env=False,
    )


def fetch(
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = 10.0,
    max_bytes: int = 5_000_000,
    user_agent: str = USER_AGENT,
    max_redirects: int = 5,
    allow_private: bool = False,
    client: httpx.Client | None = None,
) -> FetchResult:
    """GET `url` within `timeout` seconds in all, reading at most `max_bytes` of body.
    Redirects are followed here, each hop checked again; a 304 gives `not_modified`.
    A `client` passed in is used as is (make_client's add the connect-time guard)."""
    own = client is None
    http = client or make_client(allow_private=allow_private, timeout=timeout)
    headers = {"User-Agent": user_agent, "Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout
    try:
        return _follow(
            http, url, headers, deadline, timeout, max_bytes, max_redirects, allow_private
        )
    except httpx.TimeoutException:
        raise FetchError(f"timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(_describe(exc)) from None
    finally:
        if own:
            http.close()


def _follow(
    http: httpx.Client,
    url: str,
    headers: dict[str, str],
    deadline: float,
    timeout: float,
    max_bytes: int,
    max_redirects: int,
    allow_private: bool,
) -> FetchResult:
    current = url.strip()
    for _hop in range(max_redirects + 1):
        check_url(current, allow_private=allow_private)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"timed out after {timeout:g} s")
        request = http.build_request("GET", current, headers=headers, timeout=remaining)
        response = http.send(request, stream=True, follow_redirects=False)
        try:
            status = response.status_code
            if status in _REDIRECTS and "location" in response.headers:
                current = urljoin(current, response.headers["location"])
                continue
            if status == 304:
                return FetchResult(
                    status=status,
                    final_url=current,
                    headers=dict(response.headers),
                    etag=response.headers.get("etag") or headers.get("If-None-Match"),
                    last_modified=response.headers.get("last-modified")
                    or headers.get("If-Modified-Since"),
                    not_modified=True,
                )
            if not 200 <= status < 300:
                raise FetchError(f"HTTP {status} {response.reason_phrase}".strip())
            content = _read_capped(response, max_bytes, deadline, timeout)
            return FetchResult(
                status=status,
                final_url=current,
                content=content,
                headers=dict(response.headers),
                encoding=response.charset_encoding,
                etag=response.headers.get("etag"),
                last_modified=response.headers.get("last-modified"),
            )
        finally:
            response.close()
    raise FetchError(f"more than {max_redirects} redirects (last to {current})")


def _read_capped(
    response: httpx.Response, max_bytes: int, deadline: float, timeout: float
) -> bytes:
    """The body, decompressed, refusing it as soon as it passes `max_bytes` or the deadline."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"response larger than {format_size(max_bytes)}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > max_bytes:
            raise FetchError(f"response larger than {format_size(max_bytes)}")
        if time.monotonic() > deadline:
            raise FetchError(f"timed out after {timeout:g} s")
    return bytes(body)


def format_size(size: int) -> str:
    """5_000_000 -> "5 MB", 200_000 -> "200 kB": sizes as people read them."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:g} MB"
    if size >= 1_000:
        return f"{size / 1_000:g} kB"
    return f"{size} bytes"


def _describe(exc: httpx.HTTPError) -> str:
    """One line for a transport error (connection refused, TLS, protocol)."""
    detail = str(exc).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}"
    if isinstance(exc, httpx.DecodingError):
        return f"cannot decode the response: {detail}"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"unsupported URL: {detail}"
    return f"request failed: {detail}"
