"""Which address sent the request: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import ipaddress

from .config import Network


def within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """Walk X-Forwarded-For from the right while each hop is a trusted proxy."""
    address = peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while hops and within(address, trusted):
        address = hops.pop()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return peer
