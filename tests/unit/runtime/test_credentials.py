"""How NATS URLs are named in logs and errors: never with their password or token."""

from __future__ import annotations

import pytest

from workers.runtime import credentials
from workers.runtime.credentials import redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://ops:hunter2@nats.internal:4222", "nats://ops:***@nats.internal:4222"),
        ("tls://s3cr3t-token@nats.internal:4222", "tls://***@nats.internal:4222"),
        (
            "nats://a:p1@n1:4222, nats://n2:4222,nats://b:p:2@n3",
            "nats://a:***@n1:4222,nats://n2:4222,nats://b:***@n3",
        ),
        ("nats://u:p@w@rd@host:4222", "nats://u:***@host:4222"),
        ("ops:hunter2@127.0.0.1:4222", "ops:***@127.0.0.1:4222"),
        ("127.0.0.1:4222", "127.0.0.1:4222"),
    ],
)
def test_a_url_is_shown_without_its_password_or_token(url: str, shown: str) -> None:
    """User names and hosts stay readable; what follows the user, or a lone token, is masked."""
    assert redact_url(url) == shown


def test_an_unparsable_url_is_not_echoed() -> None:
    """A URL urllib cannot split (an unclosed IPv6 bracket) is replaced, not printed raw."""
    assert redact_url("nats://user:pw@[::1:4222") == "[unparsable NATS URL]"


def test_a_node_actors_dev_user_is_named_after_its_node_from_relay_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each node operator's account has its own users: node-2's verifier is node-2-verifier."""
    for name in ("RELAY_NATS_USER_VERIFIER", "RELAY_NATS_PASSWORD_VERIFIER", "RELAY_NATS_NO_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RELAY_NODE", "node-2")
    assert credentials.credentials_for("verifier") == (
        "node-2-verifier",
        "node-2-verifier-dev-password",
    )
    assert credentials.credentials_for("verifier", "node-1")[0] == "node-1-verifier"
    monkeypatch.delenv("RELAY_NODE")
    assert credentials.credentials_for("verifier")[0] == "node-0-verifier"


def test_the_gateway_and_capability_workers_are_their_own_party_and_ops_follows_the_party(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gateway, vault and echo keep their names; ops and registry-admin take the party asked."""
    monkeypatch.delenv("RELAY_NATS_NO_AUTH", raising=False)
    monkeypatch.setenv("RELAY_NODE", "node-3")
    for actor in ("gateway", "vault", "echo"):
        monkeypatch.delenv(f"RELAY_NATS_USER_{actor.upper()}", raising=False)
        assert credentials.credentials_for(actor)[0] == actor
    monkeypatch.delenv("RELAY_NATS_USER_OPS", raising=False)
    assert credentials.credentials_for("ops")[0] == "node-3-ops"
    assert credentials.credentials_for("ops", "gateway")[0] == "gateway-ops"
    assert credentials.dev_user("registry-admin", "gateway") == "gateway-registry-admin"


def test_an_explicit_user_in_the_environment_still_wins_over_the_party_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RELAY_NATS_USER_<ACTOR> / _PASSWORD_<ACTOR> override the dev names of any party."""
    monkeypatch.delenv("RELAY_NATS_NO_AUTH", raising=False)
    monkeypatch.setenv("RELAY_NATS_USER_INGRESS", "alice")
    monkeypatch.setenv("RELAY_NATS_PASSWORD_INGRESS", "s3cret")
    assert credentials.credentials_for("ingress", "node-1") == ("alice", "s3cret")
