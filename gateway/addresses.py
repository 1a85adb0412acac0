"""Who is calling, by address: the peer of the connection, or, when that
peer is one of our own proxies, the client address the proxy reports.

nginx puts the address it was called from in ``x-real-ip`` (replacing any
value the client sent). Anyone else can send that header too, so it is
believed only from the configured proxy networks; from any other peer it is
ignored and the peer's own address is the caller's. ``X-Forwarded-For`` is
never read: our proxies do not send it, and a client can.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

import grpc

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REAL_IP = "x-real-ip"


def peer_address(peer: str) -> str:
    """The address of a gRPC peer string (``ipv4:10.0.0.1:5000``,
    ``ipv6:[::1]:5000``); the string itself for any other kind (``unix:...``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]").removeprefix("%5B").removesuffix("%5D")
    return rest.rsplit(":", 1)[0] if kind == "ipv4" else peer


class ClientAddresses:
    def __init__(self, trusted_proxies: Iterable[Network]) -> None:
        self._trusted = tuple(trusted_proxies)
        # Peers are few (the proxies) or, for a gateway reached directly,
        # bounded here: each is judged once, not on every call.
        self.trusted = functools.lru_cache(maxsize=4096)(self._judge)

    def _judge(self, address: str) -> bool:
        """True when ``address`` is one of the configured proxies."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def of(self, context: grpc.aio.ServicerContext[Any, Any]) -> str:
        """The caller's address: the ``x-real-ip`` a trusted proxy reports,
        else the peer of the connection."""
        peer = peer_address(context.peer() or "")
        if not self.trusted(peer):
            return peer
        for key, value in context.invocation_metadata() or ():
            if key == REAL_IP and isinstance(value, str):
                try:
                    return str(ipaddress.ip_address(value.strip()))
                except ValueError:
                    break  # not an address: our proxy would not send it
        return peer
