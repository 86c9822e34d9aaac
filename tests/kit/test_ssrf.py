"""kit.ssrf: which addresses a request from our servers may go to."""

from __future__ import annotations

import ipaddress

import pytest

from threadline.kit.ssrf import address_problem


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "not a public address"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "private"),
        ("192.0.2.1", "private"),  # documentation range
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address: str, problem: str) -> None:
    reason = address_problem(ipaddress.ip_address(address))
    assert reason is not None and problem in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None
