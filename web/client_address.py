"""Who a client is, by address: the peer, or behind a trusted proxy the address it
forwarded; and the key under which caps count it (an IPv6 /64 is one client)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from web.appkeys import SETTINGS

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in trusted)


def is_trusted(address: str, trusted: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # a dual-stack listener sees nginx on 127.0.0.1 as ::ffff:127.0.0.1
    return any(ip in network for network in _networks(trusted))


def client_address(request: web.Request) -> str:
    """The peer's address; when the peer is a trusted proxy (settings.trusted_proxies,
    loopback by default), the last address in X-Forwarded-For that is not itself one."""
    trusted = request.app[SETTINGS].trusted_proxies
    peer = request.remote or "unknown"
    if not is_trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return peer


def address_key(address: str) -> str:
    """An IPv4 address as it is; an IPv6 address as its /64, which one host or one
    home is handed whole (counting each address would give it 2^64 allowances)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def client_group(request: web.Request) -> str:
    """The client as caps and rate limits count it: `address_key(client_address(request))`."""
    return address_key(client_address(request))
