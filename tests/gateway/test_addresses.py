"""Whose address a call comes from: ``x-real-ip`` is believed from the
configured proxies only; from anyone else the peer's own address counts."""

from __future__ import annotations

import ipaddress
from typing import Any, cast

import grpc
import pytest

from gateway.addresses import ClientAddresses, peer_address

LOOPBACK = ClientAddresses([ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")])


class Call:
    """The two things a servicer context tells about its caller."""

    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._peer = peer
        self._metadata = metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def address_of(addresses: ClientAddresses, peer: str, *metadata: tuple[str, str]) -> str:
    return addresses.of(cast(grpc.aio.ServicerContext[Any, Any], Call(peer, metadata)))


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:10.1.2.3:50000", "10.1.2.3"),
        ("ipv6:[2001:db8::7]:50000", "2001:db8::7"),
        ("ipv6:%5B::1%5D:50000", "::1"),
        ("unix:/tmp/socket", "unix:/tmp/socket"),
    ],
)
def test_the_peer_string_gives_the_address(peer: str, address: str) -> None:
    assert peer_address(peer) == address


def test_a_trusted_proxys_x_real_ip_is_the_callers_address() -> None:
    assert address_of(LOOPBACK, "ipv4:127.0.0.1:4000", ("x-real-ip", "198.51.100.7")) == (
        "198.51.100.7"
    )
    assert address_of(LOOPBACK, "ipv6:[::1]:4000", ("x-real-ip", "2001:db8::1")) == "2001:db8::1"


def test_anyone_elses_x_real_ip_is_ignored() -> None:
    spoofed = ("x-real-ip", "198.51.100.7")
    assert address_of(LOOPBACK, "ipv4:203.0.113.9:4000", spoofed) == "203.0.113.9"
    assert address_of(LOOPBACK, "ipv6:[2001:db8::9]:4000", spoofed) == "2001:db8::9"
    # Only the configured networks are trusted, loopback included.
    proxies = ClientAddresses([ipaddress.ip_network("10.0.0.0/24")])
    assert address_of(proxies, "ipv4:10.0.0.5:4000", spoofed) == "198.51.100.7"
    assert address_of(proxies, "ipv4:10.0.1.5:4000", spoofed) == "10.0.1.5"
    assert address_of(proxies, "ipv4:127.0.0.1:4000", spoofed) == "127.0.0.1"


def test_x_forwarded_for_is_never_read() -> None:
    assert address_of(LOOPBACK, "ipv4:127.0.0.1:4000", ("x-forwarded-for", "198.51.100.7")) == (
        "127.0.0.1"
    )


def test_a_header_that_is_not_an_address_leaves_the_peer() -> None:
    for value in ("", "not-an-ip", "198.51.100.7, 10.0.0.1", "a" * 5000):
        assert address_of(LOOPBACK, "ipv4:127.0.0.1:4000", ("x-real-ip", value)) == "127.0.0.1"
