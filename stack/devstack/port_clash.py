"""Saying why a service could not bind its port, when the kernel may have lent it.

The stack's default ports (55432, 59092, ...) lie in Linux's ephemeral range
(32768-60999 by default), from which the kernel picks the local port of every
outgoing connection. A connection that holds one of them (a client of any
program, even one retrying towards that very port while the service is down)
makes the service's bind fail with "Address already in use", although nothing
listens there: `up`'s check for a listening port cannot see it. The hint says
which ports are exposed that way and the two ways out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from acct2crm.config_file import ENV_PREFIX
from acct2crm.settings import Settings

PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
BIND_FAILED = "address already in use"


def parse_ports(text: str) -> set[int]:
    """The ports of a kernel list such as ``"8080,55000-55010"`` (empty: none)."""
    ports: set[int] = set()
    for part in (p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def lendable(ports: Iterable[int], port_range: tuple[int, int], reserved: set[int]) -> list[int]:
    """The ports the kernel may give to an outgoing connection."""
    low, high = port_range
    return sorted(p for p in set(ports) if low <= p <= high and p not in reserved)


def hint(
    log_lines: Sequence[str],
    ports: Sequence[int],
    port_settings: Mapping[str, int],
    port_range: tuple[int, int],
    reserved: set[int],
    *,
    reserved_text: str = "",
) -> str | None:
    """What to do, when the log says a bind failed and a port of the service is lendable.

    ``reserved_text``: the kernel's list as it reads now, which the sysctl keeps
    (writing the setting replaces the whole list)."""
    if not any(BIND_FAILED in line.lower() for line in log_lines):
        return None
    exposed = lendable(ports, port_range, reserved)
    if not exposed:
        return None
    names = [f"{ENV_PREFIX}{name.upper()}" for name, value in sorted(port_settings.items())
             if value in exposed]
    listed = ",".join(str(p) for p in exposed)
    return (
        f"port {listed} is in Linux's ephemeral range ({port_range[0]}-{port_range[1]}), "
        "so an outgoing connection may hold it while nothing listens there; start again "
        f"in a minute, choose a port below {port_range[0]} ({', '.join(names) or 'its setting'}), "
        f"or keep the kernel from lending it: sysctl -w "
        f"net.ipv4.ip_local_reserved_ports={','.join(filter(None, [reserved_text, listed]))}"
    )


def bind_hint(log: Path, ports: Sequence[int], settings: Settings) -> str | None:
    """``hint`` for a service whose start failed, from its log and this machine's ranges."""
    try:
        low, high = (int(v) for v in PORT_RANGE.read_text().split())
        reserved_text = RESERVED_PORTS.read_text().strip()
        reserved = parse_ports(reserved_text)
        lines = log.read_text(errors="replace").splitlines()[-200:]
    except (OSError, ValueError):
        return None
    port_settings = {name: value for name, value in settings.model_dump().items()
                     if name.endswith("_port") and isinstance(value, int)}
    return hint(lines, ports, port_settings, (low, high), reserved,
                reserved_text=reserved_text)
