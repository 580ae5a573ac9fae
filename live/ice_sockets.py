"""Where the relay's ICE host sockets live: a UDP port range and an announced public IP.

On a cloud machine behind a 1:1 NAT the node only knows its private address, so its
host candidates are useless to viewers on the internet; announcing the public IP in
their place (Pion's ``NAT1To1IPs``, mediasoup's ``announcedIp``) lets a viewer reach
the node without a STUN round trip per session. A firewall in front of the node opens
one UDP range instead of every ephemeral port. Both are off by default: aioice then
gathers as it always does.

Each peer connection holds one port of the range per host address of the machine (one
component: the relay requires rtcp-mux), so the range must be at least as large as the
peak number of viewers plus publishers. When it is exhausted a new session is refused
with ``RelayUnavailable`` (HTTP 503) instead of being answered with no candidates.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any, Optional

from live import aiortc_hooks
from live.errors import RelayUnavailable

# Ports a bind may find taken by another socket (or, for EACCES, reserved): try the next.
_PORT_TAKEN = (errno.EADDRINUSE, errno.EACCES)


def parse_port_range(text: str) -> tuple[int, int]:
    """``"40000-40100"`` -> ``(40000, 40100)``, both ends included."""
    first_text, dash, last_text = text.strip().partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if dash else first
    except ValueError:
        raise ValueError(f"a UDP port range looks like 40000-40100, not {text!r}") from None
    if not 1024 <= first <= last <= 65535:
        raise ValueError(f"UDP port range {text!r} must lie within 1024-65535, low to high")
    return first, last


class PortRange:
    """Binds UDP sockets on the first free port of ``[first, last]``.

    A rotating cursor, rather than always starting at ``first``, keeps a port that a
    session just released out of use for as long as possible, so late packets for the
    old session do not reach the new one's socket.
    """

    def __init__(self, first: int, last: int) -> None:
        if not 0 < first <= last <= 65535:
            raise ValueError(f"bad UDP port range {first}-{last}")
        self.first = first
        self.last = last
        self._next = first

    def __contains__(self, port: object) -> bool:
        return isinstance(port, int) and self.first <= port <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def bind(self, address: str) -> socket.socket:
        """A non-blocking UDP socket bound to ``address`` on a port of the range.

        Raises ``RelayUnavailable`` when every port is taken on that address, and
        ``OSError`` when the address itself cannot be bound (aioice then skips it).
        """
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        size = self.last - self.first + 1
        for _ in range(size):
            port = self._next
            self._next = self.first if port == self.last else port + 1
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((address, port))
            except OSError as exc:
                sock.close()
                if exc.errno in _PORT_TAKEN:
                    continue
                raise
            sock.setblocking(False)
            return sock
        raise RelayUnavailable(f"no free UDP port in {self} on {address}")


class IceSockets:
    """The relay's choices for its peer connections' host candidates (see module doc)."""

    def __init__(
        self, *, public_ip: Optional[str] = None, ports: Optional[tuple[int, int]] = None
    ) -> None:
        self.public_ip = str(ipaddress.ip_address(public_ip)) if public_ip else None
        self._public_version = ipaddress.ip_address(public_ip).version if public_ip else None
        self.ports = PortRange(*ports) if ports is not None else None

    @property
    def is_default(self) -> bool:
        return self.public_ip is None and self.ports is None

    def announced(self, bound_address: str) -> str:
        """The address to announce for a host socket bound to ``bound_address``: the
        public IP for every host address of its family (one public IP serves them all,
        as Pion does with a single NAT 1:1 IP), the address itself otherwise."""
        if self.public_ip is not None:
            if ipaddress.ip_address(bound_address).version == self._public_version:
                return self.public_ip
        return bound_address

    def bind(self, address: str) -> socket.socket:
        if self.ports is not None:
            return self.ports.bind(address)
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((address, 0))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def apply(self, pc: Any) -> None:
        """Install on an ``RTCPeerConnection`` before ``setLocalDescription`` (which
        gathers). Nothing is installed when neither option is set."""
        if not self.is_default:
            aiortc_hooks.gather_host_candidates(pc, bind=self.bind, announce=self.announced)
