"""Callback URL checks: absolute https, no user info, no internal hosts (SSRF)."""
from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from .errors import InvalidInput


class Unresolvable(InvalidInput):
    """The host name does not resolve right now (at send time: a failed attempt, retried)."""


_INTERNAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_internal_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_private


def check_callback_url(url: str, allow_private: bool, resolve: bool = False) -> str:
    """Return ``url`` if a webhook may be sent there, else raise InvalidInput (422).

    ``resolve`` also looks the host up and refuses it if any address it has is
    internal (done at send time; at create time the literal host is checked).
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError:
        raise InvalidInput("callback_url is not a valid URL") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise InvalidInput(f"callback_url must be an absolute {' or '.join(allowed_schemes)} URL")
    host = parts.hostname
    if not host:
        raise InvalidInput("callback_url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("callback_url must not carry user info")
    if any(c.isspace() for c in url):
        raise InvalidInput("callback_url must not contain whitespace")
    try:
        host.encode("idna")
    except UnicodeError:
        raise InvalidInput("callback_url host is not a valid host name") from None
    if allow_private:
        return url
    if host.lower().rstrip(".") in _INTERNAL_NAMES or host.lower().endswith(".localhost"):
        raise InvalidInput("callback_url points to an internal host")
    try:
        literal = is_internal_address(host)
    except ValueError:
        literal = None
    if literal:
        raise InvalidInput("callback_url points to an internal address")
    if literal is None and "." not in host:
        raise InvalidInput("callback_url host must be a fully qualified domain name")
    if resolve and literal is None:
        try:
            infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError, ValueError):
            raise Unresolvable(f"callback_url host {host} does not resolve") from None
        if any(is_internal_address(info[4][0].split("%")[0]) for info in infos):
            raise InvalidInput("callback_url resolves to an internal address")
    return url
