"""Subject naming: one token per thing, reversible encoding."""

from __future__ import annotations

import pytest

from schemas import subjects


@pytest.mark.parametrize(
    "value",
    ["vault@1.0.0", "confidential.secrets.get", "a_b", "my-cap@1.0.0", "ünï.code", "_", "x"],
)
def test_every_string_round_trips_through_one_token(value: str) -> None:
    """encode_token never emits a separator or wildcard and decode_token inverts it."""
    token = subjects.encode_token(value)
    assert not any(c in token for c in ".*> \t")
    assert subjects.decode_token(token) == value


def test_capability_subject_keeps_the_id_in_one_token() -> None:
    """`vault@1.0.0` becomes a single token between the root and the verb."""
    assert subjects.capability("vault@1.0.0", "vault.secrets.get") == (
        "cap.v1.vault_401_2e0_2e0.vault_2esecrets_2eget"
    )


@pytest.mark.parametrize("token", ["a_2", "a_zz", "A_41", "a.b", ""])
def test_tokens_not_produced_by_the_encoder_are_rejected(token: str) -> None:
    """Malformed or non-canonical tokens raise instead of decoding to something else."""
    with pytest.raises(ValueError, match=r".+"):
        subjects.decode_token(token)


def test_an_empty_capability_method_gets_a_token_no_method_can_collide_with() -> None:
    """Method "" routes to `_`, which no non-empty method encodes to (and which is not valid)."""
    assert subjects.capability("echo@1.0.0", "") == "cap.v1.echo_401_2e0_2e0._"
    assert subjects.EMPTY_VERB_TOKEN not in {subjects.encode_token(m) for m in ("_", "x", "-")}
    with pytest.raises(ValueError, match=r".+"):
        subjects.decode_token(subjects.EMPTY_VERB_TOKEN)
