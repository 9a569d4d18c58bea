"""Trusted PCR values decode as chainlink-common's json.Unmarshal into nitro.PCRs (PROTOCOL 3.4)."""

from __future__ import annotations

import pytest

from workers.attestation.measurements import MeasurementIndex, PcrSet, parse_trusted_value

PREFIX = "failed to unmarshal trusted PCRs: "
A, B, C = "aa" * 48, "bb" * 48, "cc" * 48


def pcrs(raw: bytes) -> PcrSet:
    return parse_trusted_value(raw)


def error(raw: bytes) -> str:
    with pytest.raises(ValueError, match=r"^failed to unmarshal trusted PCRs: ") as exc:
        parse_trusted_value(raw)
    return str(exc.value)


def test_canonical_lower_case_keys_decode_hex_of_either_case() -> None:
    """The exact tags pcr0/pcr1/pcr2 decode upper-, lower- or mixed-case hex, as before."""
    raw = f'{{"pcr0":"{A.upper()}","pcr1":"{B}","pcr2":"AbCd"}}'.encode()
    assert pcrs(raw) == PcrSet(pcr0=bytes.fromhex(A), pcr1=bytes.fromhex(B), pcr2=b"\xab\xcd")


@pytest.mark.parametrize(
    "keys",
    [("PCR0", "PCR1", "PCR2"), ("Pcr0", "pCr1", "pcR2"), ("\\u0050CR0", "p\\u0043r1", "PCR2")],
)
def test_keys_differing_only_in_case_fill_the_same_fields_as_go_does(
    keys: tuple[str, str, str],
) -> None:
    """Go matches keys to struct tags case-insensitively, also after unescaping them."""
    raw = f'{{"{keys[0]}":"{A}","{keys[1]}":"{B}","{keys[2]}":"{C}"}}'.encode()
    assert pcrs(raw) == PcrSet(bytes.fromhex(A), bytes.fromhex(B), bytes.fromhex(C))


def test_unicode_lookalikes_of_the_keys_are_unknown_keys() -> None:
    """Runes that are not Go case folds of p, c or r (Cyrillic Er, fullwidth p) are ignored."""
    raw = f'{{"\u0420CR0":"{A}","\uff50cr1":"{B}","pcr2":"{C}"}}'.encode()
    assert pcrs(raw) == PcrSet(b"", b"", bytes.fromhex(C))


def test_missing_keys_give_empty_values_and_unknown_keys_are_ignored_whatever_they_hold() -> None:
    """A missing PCR is Go's nil (empty bytes); pcr3 and other keys are never decoded."""
    raw = f'{{"pcr3":"zz","x":[1,{{"y":null}}],"pcr0":"{A}"}}'.encode()
    assert pcrs(raw) == PcrSet(bytes.fromhex(A), b"", b"")
    assert pcrs(b"{}") == PcrSet(b"", b"", b"")


def test_a_repeated_key_in_any_case_is_decoded_again_so_the_last_one_wins() -> None:
    """Go decodes every occurrence in document order, an exact tag does not outrank a folded one."""
    assert pcrs(b'{"pcr0":"aa","PCR0":"bb"}').pcr0 == b"\xbb"
    assert pcrs(b'{"PCR0":"bb","pcr0":"aa"}').pcr0 == b"\xaa"


def test_a_later_null_empties_an_earlier_value() -> None:
    """HexBytes.UnmarshalJSON also runs for null, which decodes as the empty hex string."""
    assert pcrs(b'{"pcr0":"aa","Pcr0":null}').pcr0 == b""


def test_a_bad_earlier_occurrence_fails_even_if_a_later_one_is_good() -> None:
    """An Unmarshaler's error stops Go's decoding at once, so a later valid value cannot repair it."""
    assert error(b'{"pcr0":"zz","PCR0":"aa"}') == (
        PREFIX
        + "HexBytes: failed to decode hex string 'zz': encoding/hex: invalid byte: U+007A 'z'"
    )


@pytest.mark.parametrize(
    ("value", "go_error"),
    [
        ("aa bb ", "encoding/hex: invalid byte: U+0020 ' '"),
        (" aabb", "encoding/hex: invalid byte: U+0020 ' '"),
        ("aa\\tbb", "encoding/hex: invalid byte: U+0009"),
        ("abc", "encoding/hex: odd length hex string"),
        ("abz", "encoding/hex: invalid byte: U+007A 'z'"),
        ("0xaa", "encoding/hex: invalid byte: U+0078 'x'"),
        ("\u00e9", "encoding/hex: invalid byte: U+00C3 '\u00c3'"),
    ],
)
def test_hex_that_go_refuses_is_refused_with_go_error_text(value: str, go_error: str) -> None:
    """Go's hex.DecodeString accepts no spaces, no prefix, no odd length and no non-hex byte."""
    raw = f'{{"pcr0":"{value}"}}'.encode()
    shown = value.replace("\\t", "\t")
    assert error(raw) == f"{PREFIX}HexBytes: failed to decode hex string '{shown}': {go_error}"


@pytest.mark.parametrize(
    ("value", "kind"), [("5", "number"), ("true", "bool"), ("{}", "object"), ("[]", "array")]
)
def test_a_pcr_value_that_is_not_a_string_is_refused_as_hexbytes_does(
    value: str, kind: str
) -> None:
    """HexBytes first unmarshals into a Go string, and reports that type error wrapped."""
    assert error(f'{{"pcr1":{value}}}'.encode()) == (
        f"{PREFIX}HexBytes: cannot unmarshal JSON into string: "
        f"json: cannot unmarshal {kind} into Go value of type string"
    )


@pytest.mark.parametrize(("raw", "kind"), [(b"[]", "array"), (b'"x"', "string"), (b"1", "number")])
def test_a_top_level_value_that_is_not_an_object_is_a_type_error(raw: bytes, kind: str) -> None:
    """Go cannot unmarshal a non-object into the nitro.PCRs struct and says so."""
    assert error(raw) == f"{PREFIX}json: cannot unmarshal {kind} into Go value of type nitro.PCRs"


def test_a_top_level_null_is_an_empty_set_as_in_go() -> None:
    """json.Unmarshal of null into a struct is no error: every PCR stays nil."""
    assert pcrs(b"null") == PcrSet(b"", b"", b"")


@pytest.mark.parametrize(
    ("raw", "go_error"),
    [
        (b"not json", "invalid character 'o' in literal null (expecting 'u')"),
        (b"", "unexpected end of JSON input"),
        (b"{} x", "invalid character 'x' after top-level value"),
        (b'{"pcr0":"zz",}', "invalid character '}' looking for beginning of object key string"),
    ],
)
def test_invalid_json_gives_go_syntax_error_before_any_hex_error(raw: bytes, go_error: str) -> None:
    """Go validates the whole text first, so a syntax error wins over an earlier bad hex value."""
    assert error(raw) == PREFIX + go_error


def test_the_index_keeps_bad_values_as_problems_and_matches_upper_case_keyed_sets() -> None:
    """from_json_values parses each value like Go; a refused one becomes a problem line."""
    good = f'{{"PCR0":"{A}","PCR1":"{B}","PCR2":"{C}"}}'.encode()
    index = MeasurementIndex.from_json_values([b'{"pcr0":"aa bb"}', good])
    assert len(index) == 1
    assert index.problems == (
        f"{PREFIX}HexBytes: failed to decode hex string 'aa bb': "
        "encoding/hex: invalid byte: U+0020 ' '",
    )
    doc = {0: bytes.fromhex(A), 1: bytes.fromhex(B), 2: bytes.fromhex(C)}
    assert index.match(doc) == PcrSet(*doc.values())
