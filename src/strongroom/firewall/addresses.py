"""Who is the client: the peer, or what trusted proxies say in X-Forwarded-For."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from strongroom.errors import ConfigurationError, InvalidInput

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str, what: str) -> list[Network]:
    """Comma-separated CIDRs (or single addresses) to networks; raise on anything else."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigurationError(f"{what} contains {part!r}, which is not an IP network",
                                     hint="use CIDR notation such as 10.0.0.0/8") from None
    return networks


def parse_cidr(raw: str) -> Network:
    """One CIDR from a tenant admin: strict (host bits must be zero), else a 422."""
    try:
        return ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError:
        raise InvalidInput(
            "allow-list entries must be IPv4 or IPv6 networks in CIDR notation with no host "
            "bits set (for example 203.0.113.0/24 or 2001:db8::/48)"
        ) from None


def _in_any(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; match them as IPv4.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return any(ip in network or ip.ipv4_mapped in network for network in networks)
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The client's address. X-Forwarded-For is read right to left only while each hop
    is a trusted proxy; from any other peer it is ignored, so it cannot be forged."""
    if not forwarded_for or not _in_any(peer, proxies):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in_any(hop, proxies):
            return hop if _valid(hop) else peer
    return hops[0] if hops and _valid(hops[0]) else peer


def _valid(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def allowed(address: str, allowlist: Sequence[Network]) -> bool:
    """An empty allow-list allows every address; otherwise the address must be inside one."""
    return not allowlist or _in_any(address, allowlist)
