"""Argument parsing of `relay gateway`."""

from __future__ import annotations

import pytest

from workers.cli import build_parser
from workers.cli.gateway import parse_host_port
from workers.gateway.ratelimit import RateLimit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:0", ("::1", 0)),
        ("host:65535", ("host", 65535)),
    ],
)
def test_listen_addresses_parse(text: str, expected: tuple[str, int]) -> None:
    """IPv4, bracketed IPv6 and names all split into host and port."""
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["8080", ":8080", "host:", "host:http", "host:70000"])
def test_bad_listen_addresses_are_refused(text: str) -> None:
    """Missing host or port, a named port or an out-of-range port raise ValueError."""
    with pytest.raises(ValueError, match="--http"):
        parse_host_port(text)


def test_the_gateway_command_parses_limits_and_members() -> None:
    """Members split on commas; rate limits parse from the CRE format."""
    args = build_parser().parse_args(
        ["gateway", "--members", "a, b,c", "--node-rate", "5rps:2", "--don", "d"]
    )
    assert args.members == ("a", "b", "c")
    assert args.node_rate == RateLimit(rate=5.0, burst=2)
    assert args.global_rate == RateLimit(rate=50.0, burst=10)


def test_a_malformed_rate_limit_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse exits with code 2 and shows the expected format."""
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["gateway", "--members", "a", "--global-rate", "fast"])
    assert info.value.code == 2
    assert "50rps:10" in capsys.readouterr().err
