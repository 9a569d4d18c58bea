"""EnclaveConfig (PROTOCOL 10.7): the relay's check against its DON, with the internal texts."""

from __future__ import annotations

import pytest

from schemas import current
from schemas.gojson import GoJSONError
from workers.protocol import enclave_config

A, B, C = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


def config(signers: tuple[bytes | None, ...] | None, f: int = 1) -> current.EnclaveConfig:
    return current.EnclaveConfig(signers=signers, master_public_key=b"k", t=1, f=f)


def test_a_config_naming_the_don_in_any_order_passes() -> None:
    """Signers are compared sorted, so the sender's order does not matter; a higher F is fine."""
    enclave_config.check(config((C, A, B)), 1, [A, B, C])
    enclave_config.check(config((A, B, C), f=3), 1, [B, C, A])


@pytest.mark.parametrize(
    ("value", "don_f", "text"),
    [
        (None, 1, "enclave config is required"),
        (
            config((A, B, C), f=0),
            1,
            "enclave config F 0 does not meet the minimum required DON F 1",
        ),
        (config((A, B)), 1, "enclave config signers count mismatch: enclave reports 2, expected 3"),
        (config(None), 0, "enclave config signers count mismatch: enclave reports 0, expected 3"),
        (
            config((A, B, b"\x00" * 32)),
            1,
            "enclave config signer mismatch at sorted index 0: enclave reports "
            + "00" * 32
            + ", expected "
            + "01" * 32,
        ),
        (
            config((A, B, None)),
            1,
            "enclave config signer mismatch at sorted index 0: enclave reports , expected "
            + "01" * 32,
        ),
        (
            config((A, A, B)),
            1,
            "enclave config signer mismatch at sorted index 1: enclave reports "
            + "01" * 32
            + ", expected "
            + "02" * 32,
        ),
    ],
)
def test_a_config_that_does_not_match_the_don_is_refused(
    value: current.EnclaveConfig | None, don_f: int, text: str
) -> None:
    """Absent, a lower F, another count or another signer each fail with their own text."""
    with pytest.raises(enclave_config.EnclaveConfigError) as exc:
        enclave_config.check(value, don_f, [C, B, A])
    assert exc.value.message == text


def test_for_don_builds_what_the_enclave_sends() -> None:
    """The enclave's config lists the members sorted bytewise, with the DON's F."""
    built = enclave_config.for_don([C, A, B], 1, b"mpk", 2)
    assert built == current.EnclaveConfig(signers=(A, B, C), master_public_key=b"mpk", t=2, f=1)
    enclave_config.check(built, 1, [C, A, B])


def test_decode_reads_go_json_and_keeps_absent_and_null_apart() -> None:
    """Keys are matched as Go does; null lists stay nil, and bad values carry Go's text."""
    value = enclave_config.decode(b'{"Signers":["AQ==",null],"t":2,"F":1}')
    assert value == current.EnclaveConfig(signers=(b"\x01", None), t=2, f=1)
    assert current.encode_enclave_config(value) == (
        b'{"signers":["AQ==",null],"master_public_key":null,"t":2,"f":1}'
    )
    with pytest.raises(GoJSONError) as exc:
        enclave_config.decode(b'{"f":1.5}')
    assert exc.value.message == (
        "json: cannot unmarshal number 1.5 into Go struct field EnclaveConfig.f of type uint32"
    )
