"""Where a webhook may be sent: HTTPS to public addresses only, checked at registration and at sending.

A clinic's staff choose the URL, and the platform's servers call it: without
these checks a URL could make the platform call its own database, a cloud
metadata service (169.254.169.254) or anything else on its private network
(server-side request forgery). The host is resolved and every address it
resolves to must be public; the delivery then connects to the very address
that was checked (see ``core.integrations.sending``), so a name that resolves
to a public address at the check and a private one a moment later (DNS
rebinding) gains nothing.

The operator may relax this for an instance whose clinics' systems are on a
private network: ``WEBHOOKS_ALLOW_HTTP`` accepts ``http://``,
``WEBHOOKS_ALLOW_PRIVATE`` accepts private and loopback addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit


class UnsafeDestination(Exception):
    """A URL the platform refuses to call; ``reason`` says why, as a phrase after "The URL ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Destination:
    """A URL found safe to call, with the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # the path and query, as sent in the request line
    address: str  # the IP address checked, connected to as it is


#: What an operator may allow for clinics' systems on its own network; never the rest
#: (link-local holds cloud metadata services, 169.254.169.254).
RELAXABLE = frozenset({"a loopback address", "a private address", "an address that is not public"})


def _refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Return why ``address`` is not one the platform calls, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 address can carry an IPv4 one the network delivers to: mapped, 6to4, Teredo.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            return _refusal(embedded)
    for flag, words in (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    ):
        if getattr(address, flag):
            return words
    if not address.is_global:
        return "an address that is not public"  # shared address space (100.64/10) and the like
    return None


def parse(url: str, *, allow_http: bool) -> SplitResult:
    """Return ``url`` split into its parts, or raise :class:`UnsafeDestination` for its form alone."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeDestination(f"is not a valid URL ({error})") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeDestination(
            "must be an https:// URL" if not allow_http else "must be an https:// or http:// URL"
        )
    if not parts.hostname:
        raise UnsafeDestination("has no host name")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestination("must not carry a user name or password")
    if parts.fragment:
        raise UnsafeDestination("must not have a #fragment")
    if port == 0:
        raise UnsafeDestination("has no valid port")
    return parts


def check(url: str, *, allow_http: bool, allow_private: bool) -> Destination:
    """Resolve ``url``'s host and return where to connect, or raise :class:`UnsafeDestination`.

    Every address the host resolves to must be public (unless ``allow_private``):
    a name with one public and one private address is refused, since the
    connection could go to either.
    """
    parts = parse(url, allow_http=allow_http)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as error:
        raise UnsafeDestination(
            f"names a host, {host!r}, that does not resolve ({error})"
        ) from None
    addresses = []
    for _family, _type, _proto, _name, sockaddr in found:
        text = str(sockaddr[0]).split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) names no network
        address = ipaddress.ip_address(text)
        why = _refusal(address)
        if why is not None and not (allow_private and why in RELAXABLE):
            raise UnsafeDestination(f"names a host, {host!r}, that resolves to {why} ({address})")
        addresses.append(text)
    if not addresses:
        raise UnsafeDestination(f"names a host, {host!r}, that does not resolve")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(url, parts.scheme, host, port, target, addresses[0])
