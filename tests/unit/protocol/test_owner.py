"""Owner checks and EIP-55 normalisation (PROTOCOL 4.1 steps 2-3, 5.1, 8.5)."""

from __future__ import annotations

import pytest

from workers.protocol.owner import (
    InvalidOwnerError,
    is_hex_address,
    normalize_owner,
    to_checksum_address,
)

# The EIP-55 document's own examples: all caps, all lower, and mixed case.
EIP55_EXAMPLES = [
    "0x52908400098527886E0F7030069857D2E4169EE7",
    "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
    "0xde709f2102306220921060314715629080e2fb77",
    "0x27b1fdb04752bbc536007a920d24acb045561c26",
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


def test_protocol_vector_normalises_to_its_checksum_form() -> None:
    """The upstream test address gets its EIP-55 capitalisation."""
    owner = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
    assert normalize_owner(owner) == "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_examples_are_reproduced_from_any_casing(address: str) -> None:
    """Lower, upper (with 0X) and already-checksummed inputs all give the document's form."""
    digits = address[2:]
    assert to_checksum_address(address.lower()) == address
    assert to_checksum_address("0X" + digits.upper()) == address
    assert to_checksum_address(digits) == address


@pytest.mark.parametrize(
    ("candidate", "valid"),
    [
        ("0x" + "a" * 40, True),
        ("0X" + "A" * 40, True),
        ("a" * 40, True),
        ("0x" + "aB" * 20, True),  # checksum is not validated
        ("0x" + "a" * 39, False),
        ("0x" + "a" * 41, False),
        ("0x" + "g" * 40, False),
        ("0x0x" + "a" * 38, False),
        ("", False),
        ("0x", False),
        ("0x" + "a" * 38 + "é", False),
        (" 0x" + "a" * 40, False),
    ],
)
def test_is_hex_address_matches_go_ethereum(candidate: str, valid: bool) -> None:
    """Optional 0x/0X prefix then exactly 40 hex digits of either case; nothing else."""
    assert is_hex_address(candidate) is valid


@pytest.mark.parametrize(
    ("owner", "message"),
    [
        ("not-an-address", 'invalid owner address: "not-an-address"'),
        ("", 'invalid owner address: ""'),
        ('0x"quoted"\\', 'invalid owner address: "0x\\"quoted\\"\\\\"'),
        ("tab\there\n", 'invalid owner address: "tab\\there\\n"'),
        ("\x00\x7f\u2028é", 'invalid owner address: "\\x00\\x7f\\u2028é"'),
        ("bad\udcff", 'invalid owner address: "bad\\xff"'),
    ],
)
def test_invalid_owner_carries_the_go_quoted_wire_message(owner: str, message: str) -> None:
    """The -32602 text quotes the owner exactly like Go's %q."""
    with pytest.raises(InvalidOwnerError) as exc:
        normalize_owner(owner)
    assert exc.value.message == message
    assert str(exc.value) == message
