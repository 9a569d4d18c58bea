"""One line per JetStream failure, telling the server's silence from JetStream's."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from workers.runtime import jetstream


@pytest.mark.parametrize(
    ("exc", "says"),
    [
        (nats.js.errors.ServiceUnavailableError(), "is unavailable (503"),
        (nats.errors.NoRespondersError(), "did not answer: not enabled"),
        (nats.errors.TimeoutError(), "the NATS server answered but JetStream did not"),
        (nats.errors.NoServersError(), "no NATS server answered"),
        (
            nats.js.errors.APIError(
                code=500,
                err_code=10074,
                description="replicas > 1 not supported in non-clustered mode",
            ),
            "JetStream refused: replicas > 1 not supported",
        ),
    ],
)
def test_each_failure_gets_its_own_words(exc: BaseException, says: str) -> None:
    """A 503 with no description no longer reads `description='None'`; a timeout after the
    connection is JetStream's, not 'no server answered'."""
    text = jetstream.describe(exc)
    assert says in text
    assert "None" not in text


def test_the_domain_is_named_when_one_is_used() -> None:
    """An operator on a leaf learns which domain did not answer."""
    assert "JetStream domain 'hub'" in jetstream.describe(
        nats.errors.NoRespondersError(), domain="hub"
    )
