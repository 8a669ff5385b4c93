"""Client addresses behind trusted proxies, and allow-list matching."""

from __future__ import annotations

import ipaddress

import pytest

from strongroom.errors import ConfigurationError, InvalidInput
from strongroom.firewall.addresses import allowed, client_address, parse_cidr, parse_networks

PROXIES = parse_networks("10.0.0.0/8, 2001:db8:ffff::/48", "trusted_proxies")


@pytest.mark.parametrize(("peer", "header", "expected"), [
    # No trusted proxy in the way: the header is the client's own claim, ignored.
    ("198.51.100.9", "203.0.113.7", "198.51.100.9"),
    ("198.51.100.9", "10.0.0.1", "198.51.100.9"),
    ("2001:db8::9", "203.0.113.7", "2001:db8::9"),
    # From a trusted proxy: the nearest hop that is not a proxy is the client.
    ("10.0.0.7", "203.0.113.7", "203.0.113.7"),
    ("10.0.0.7", "203.0.113.7, 10.1.1.1", "203.0.113.7"),
    ("10.0.0.7", "1.2.3.4, 203.0.113.7", "203.0.113.7"),  # a forged first hop is skipped
    ("10.0.0.7", "1.2.3.4,203.0.113.7,10.9.9.9", "203.0.113.7"),
    ("2001:db8:ffff::1", "2001:db8:1::5", "2001:db8:1::5"),
    # Every hop a proxy: the farthest one is all we know.
    ("10.0.0.7", "10.1.1.1, 10.2.2.2", "10.1.1.1"),
    # Garbage where the client should be: fall back to the peer, never believe the text.
    ("10.0.0.7", "not-an-address", "10.0.0.7"),
    ("10.0.0.7", "203.0.113.7:5555", "10.0.0.7"),
    ("10.0.0.7", "", "10.0.0.7"),
    ("10.0.0.7", " , ,", "10.0.0.7"),
])
def test_client_address(peer: str, header: str, expected: str) -> None:
    assert client_address(peer, header, PROXIES) == expected


def test_without_configured_proxies_the_header_is_always_ignored() -> None:
    assert client_address("10.0.0.7", "203.0.113.7", []) == "10.0.0.7"
    assert client_address("127.0.0.1", "203.0.113.7", []) == "127.0.0.1"


def test_no_header_means_the_peer() -> None:
    assert client_address("10.0.0.7", None, PROXIES) == "10.0.0.7"


@pytest.mark.parametrize(("raw", "count"), [("", 0), ("10.0.0.0/8", 1), ("10.0.0.1", 1),
                                            (" 10.0.0.0/8 , ::1 ,", 2)])
def test_parse_networks(raw: str, count: int) -> None:
    assert len(parse_networks(raw, "trusted_proxies")) == count


def test_parse_networks_names_the_setting_and_the_bad_part() -> None:
    with pytest.raises(ConfigurationError, match=r"trusted_proxies contains 'nope'"):
        parse_networks("10.0.0.0/8, nope", "trusted_proxies")


@pytest.mark.parametrize("raw", ["10.0.0.1/8", "10.0.0.0/33", "", "::/129", "nope",
                                 "2001:db8::1/32", "10.0.0.0/8/8", "10.0.0.0/08x"])
def test_parse_cidr_refuses_with_a_422(raw: str) -> None:
    with pytest.raises(InvalidInput, match="CIDR"):
        parse_cidr(raw)


@pytest.mark.parametrize("raw", ["10.0.0.0/8", " 203.0.113.0/24 ", "2001:db8::/32", "::/0",
                                 "192.0.2.1/32"])
def test_parse_cidr_accepts_networks(raw: str) -> None:
    assert parse_cidr(raw) == ipaddress.ip_network(raw.strip())


@pytest.mark.parametrize(("address", "verdict"), [
    ("203.0.113.5", True), ("203.0.114.5", False), ("2001:db8:1::1", True),
    ("2001:db8:2::1", False), ("::ffff:203.0.113.5", True), ("::ffff:198.51.100.1", False),
    ("unknown", False), ("", False), ("203.0.113.5%eth0", False),
])
def test_allowed(address: str, verdict: bool) -> None:
    allowlist = [parse_cidr("203.0.113.0/24"), parse_cidr("2001:db8:1::/48")]
    assert allowed(address, allowlist) is verdict


def test_an_empty_allow_list_allows_everyone() -> None:
    assert allowed("198.51.100.1", [])
    assert allowed("unknown", [])
