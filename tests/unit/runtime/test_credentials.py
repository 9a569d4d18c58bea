"""How NATS URLs are named in logs and errors: never with their password or token."""

from __future__ import annotations

import pytest

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
