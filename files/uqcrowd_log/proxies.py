"""Which address sent the request: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from .config import Network

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_LONGEST_ADDRESS = 45  # characters of the longest IPv6 address text: anything longer is not one


@lru_cache(maxsize=4096)  # a worker's page sends many requests from one address
def _parsed(address: str) -> tuple[IP, str] | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip, str(ip)


def _address(text: str) -> tuple[IP, str] | None:
    """The address and its canonical text, or None (parsed once per address; long junk never cached)."""
    return _parsed(text) if len(text) <= _LONGEST_ADDRESS else None


def in_networks(address: str, networks: tuple[Network, ...]) -> bool:
    parsed = _address(address)
    return parsed is not None and any(parsed[0] in network for network in networks)


@lru_cache(maxsize=4096)
def recorded_ip(address: str, mode: str) -> str | None:
    """The client address as the privacy setting allows: in full, truncated (the /24 of an IPv4
    address, the /48 of an IPv6 one) or not at all (None)."""
    if mode == "none":
        return None
    if mode == "truncated":
        parsed = _address(address)
        if parsed is None:
            return None
        ip = parsed[0]
        prefix = 24 if ip.version == 4 else 48
        return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)
    return address


def client_ip(peer: str, forwarded_for: str | None, trusted: tuple[Network, ...]) -> str:
    """Walk X-Forwarded-For from the right while each hop is a trusted proxy."""
    address = peer
    hops = [hop.strip() for hop in (forwarded_for or "").split(",") if hop.strip()]
    while hops and in_networks(address, trusted):
        address = hops.pop()
    parsed = _address(address)
    return parsed[1] if parsed else peer
