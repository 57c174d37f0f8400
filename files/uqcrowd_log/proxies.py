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


def recorded_ip(address: str, mode: str) -> str | None:
    """The client address as the privacy setting allows: in full, truncated (the /24 of an IPv4
    address, the /48 of an IPv6 one) or not at all (None)."""
    if mode == "none":
        return None
    if mode == "truncated":
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
    return address


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
