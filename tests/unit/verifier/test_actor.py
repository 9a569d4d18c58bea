"""The verifier actor's policy on top of the library: debug-mode enclaves are refused by default."""

from __future__ import annotations

import pytest

from schemas import bus
from workers.attestation import TrustRoots, Verifier
from workers.attestation.testchain import TestChain
from workers.verifier.actor import DEBUG_ENCLAVE_REFUSED, VerifierActor

ZERO_PCRS = {i: bytes(48) for i in range(3)}
USER_DATA = b"u" * 32


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


def verify(chain: TestChain, *, allow_debug: bool, pcrs: dict[int, bytes]) -> bus.VerifyReply:
    actor = VerifierActor(
        Verifier(TrustRoots.development(chain.root_pem)), max_age_s=300, allow_debug=allow_debug
    )
    return actor.handle(
        bus.VerifyRequest(
            document=chain.document(pcrs=pcrs, user_data=USER_DATA),
            expected_user_data=USER_DATA,
            trusted_values=[chain.trusted_values_json(pcrs)],
            measurements_revision=1,
        )
    )


def test_a_debug_mode_enclave_is_refused_even_when_zeros_are_trusted(chain: TestChain) -> None:
    """All-zero PCR0-2 fit any code in debug mode: refused, with the reason in the detail only."""
    reply = verify(chain, allow_debug=False, pcrs=ZERO_PCRS)
    assert reply == bus.StageError(
        code=-32603, message="internal error", detail=DEBUG_ENCLAVE_REFUSED
    )


def test_debug_mode_enclaves_pass_when_development_allows_them(chain: TestChain) -> None:
    """RELAY_ALLOW_DEBUG_ENCLAVES: the same document verifies, marked as debug."""
    reply = verify(chain, allow_debug=True, pcrs=ZERO_PCRS)
    assert isinstance(reply, bus.Verified)
    assert reply.is_debug


def test_an_enclave_with_real_measurements_is_not_affected(chain: TestChain) -> None:
    """Non-zero PCRs verify as before, whatever the debug setting."""
    reply = verify(chain, allow_debug=False, pcrs={i: bytes([i + 1]) * 48 for i in range(3)})
    assert isinstance(reply, bus.Verified)
    assert not reply.is_debug
