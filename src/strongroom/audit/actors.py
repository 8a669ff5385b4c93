"""Who did it: user id, role, session or token id, client address and user agent."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os

from strongroom import __version__

_AGENT_MAX = 200


@dataclasses.dataclass(frozen=True)
class Actor:
    """The party behind an event. ``address`` is never stored in clear (see services)."""

    kind: str  # operator | user | system | anonymous
    id: str | None = None
    role: str | None = None
    session: str | None = None
    address: str | None = None
    user_agent: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The local operator running the CLI, named by numeric uid (not a personal name)."""
        return cls(
            kind="operator",
            id=f"uid:{os.getuid()}",
            role="operator",
            session=f"cli:pid:{os.getpid()}",
            user_agent=f"strongroom-cli/{__version__}",
        )

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", id="strongroom", role="system")


def network_of(address: str | None) -> str | None:
    """The coarse network of an address (/24 or /48): useful for security, not identifying."""
    if not address:
        return None
    return _network(address)


@functools.lru_cache(maxsize=1024)
def _network(address: str) -> str:
    # Cached: parsing costs more than hashing the whole event, and clients repeat addresses.
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "invalid"
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def clip_agent(agent: str | None) -> str | None:
    if agent is None:
        return None
    printable = "".join(ch for ch in agent if ch.isprintable())
    return printable[:_AGENT_MAX]
