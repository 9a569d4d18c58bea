"""NATS server lists: split, checked, passwords masked in every complaint."""

from __future__ import annotations

import pytest

from workers.runtime.servers import ServerListError, join_servers, parse_servers
from workers.runtime.settings import NodeSettings


def test_a_comma_separated_list_becomes_one_server_each_in_order() -> None:
    """`a,b` is two servers, in the order given, each with its scheme."""
    assert parse_servers("nats://a:4222, tls://b:4223") == ["nats://a:4222", "tls://b:4223"]


def test_several_lists_are_joined_as_one() -> None:
    """A repeated flag's values and comma lists inside them add up to one list."""
    assert parse_servers(["nats://a:1,nats://b:2", "nats://c:3"]) == [
        "nats://a:1",
        "nats://b:2",
        "nats://c:3",
    ]


def test_an_entry_without_a_scheme_is_read_as_nats_like_nats_py_does() -> None:
    """`host:port` means nats://host:port."""
    assert parse_servers("127.0.0.1:4222") == ["nats://127.0.0.1:4222"]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("nats://a:1,,nats://b:2", "empty entry"),
        ("nats://a:1,", "empty entry"),
        ("http://a:1", "scheme 'http'"),
        ("nats://a:notaport", "not a URL"),
        ("nats://:4222", "names no host"),
    ],
)
def test_a_bad_entry_is_one_clear_error(value: str, says: str) -> None:
    """Empty entries, foreign schemes, bad ports and missing hosts are refused by name."""
    with pytest.raises(ServerListError, match=says):
        parse_servers(value)


def test_a_password_in_a_bad_list_is_masked_in_the_error() -> None:
    """The error names the entry with its password replaced, never the password itself."""
    with pytest.raises(ServerListError) as caught:
        parse_servers("nats://ops:s3cret@a:1,http://ops:s3cret@b:2")
    assert "s3cret" not in str(caught.value)
    assert "ops:***@b:2" in str(caught.value)


def test_join_is_what_relay_nats_url_carries() -> None:
    """A list joined for the environment parses back to itself."""
    servers = ["nats://a:1", "nats://b:2"]
    assert parse_servers(join_servers(servers)) == servers


def test_node_settings_refuse_a_bad_server_list_naming_the_variable() -> None:
    """RELAY_NATS_URL with an empty entry stops the node at start with one line."""
    with pytest.raises(ValueError, match=r"RELAY_NATS_URL \(--nats\).*empty entry"):
        NodeSettings(nats_url="nats://a:1,,nats://b:2")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("RELAY_KV_REPLICAS", "0"), ("RELAY_KV_REPLICAS", "x"), ("RELAY_JS_DOMAIN", "a.b")],
)
def test_node_settings_refuse_bad_jetstream_options(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """Replicas outside 1-5 and a domain that is not one subject token are refused by name."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        NodeSettings.from_env()


def test_node_settings_read_the_jetstream_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """RELAY_JS_DOMAIN and RELAY_KV_REPLICAS reach the settings every KV user reads."""
    monkeypatch.setenv("RELAY_JS_DOMAIN", "hub")
    monkeypatch.setenv("RELAY_KV_REPLICAS", "3")
    settings = NodeSettings.from_env()
    assert (settings.js_domain, settings.kv_replicas) == ("hub", 3)
