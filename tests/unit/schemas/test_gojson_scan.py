"""Go's JSON scanner as `schemas.gojson_scan` reproduces it: validity, error texts, strings."""

from __future__ import annotations

import random

import pytest

from schemas.gojson_errors import GoSyntaxError
from schemas.gojson_scan import (
    JSONNumber,
    JSONObject,
    accepted_by_msgspec,
    compact,
    decode_string,
    parse,
)
from schemas.gojson_strconv import quote_char
from tests.unit.schemas.test_gojson_reference import (
    ReferenceSyntaxError,
    reference_check_valid,
    reference_unquote,
)

SYNTAX_ERRORS = [
    (b"{i", "invalid character 'i' looking for beginning of object key string"),
    (b"", "unexpected end of JSON input"),
    (b" \t\r\n", "unexpected end of JSON input"),
    (b'{"a"}', "invalid character '}' after object key"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b":2}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"{} {}", "invalid character '{' after top-level value"),
    (b"{}x", "invalid character 'x' after top-level value"),
    (b"01", "invalid character '1' after top-level value"),
    (b"[01]", "invalid character '1' after array element"),
    (b'{"a":01}', "invalid character '1' after object key:value pair"),
    (b"-", "invalid character ' ' in numeric literal"),
    (b"-x", "invalid character 'x' in numeric literal"),
    (b"1.", "invalid character ' ' after decimal point in numeric literal"),
    (b"[1.]", "invalid character ']' after decimal point in numeric literal"),
    (b"1e", "invalid character ' ' in exponent of numeric literal"),
    (b"1e+", "invalid character ' ' in exponent of numeric literal"),
    (b"[1E-x]", "invalid character 'x' in exponent of numeric literal"),
    (b"+1", "invalid character '+' looking for beginning of value"),
    (b".5", "invalid character '.' looking for beginning of value"),
    (b"NaN", "invalid character 'N' looking for beginning of value"),
    (b"Infinity", "invalid character 'I' looking for beginning of value"),
    (b"-Infinity", "invalid character 'I' in numeric literal"),
    (b"tru", "invalid character ' ' in literal true (expecting 'e')"),
    (b"trUe", "invalid character 'U' in literal true (expecting 'u')"),
    (b"fals", "invalid character ' ' in literal false (expecting 'e')"),
    (b"nul", "invalid character ' ' in literal null (expecting 'l')"),
    (b"nulL", "invalid character 'L' in literal null (expecting 'l')"),
    (b"None", "invalid character 'N' looking for beginning of value"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
    (b'"abc', "unexpected end of JSON input"),
    (b'"a\\', "invalid character ' ' in string escape code"),
    (b'"\\x"', "invalid character 'x' in string escape code"),
    (b'"\\U0041"', "invalid character 'U' in string escape code"),
    (b'"\\u12', "invalid character ' ' in \\u hexadecimal character escape"),
    (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
    (b'"a\x01"', "invalid character '\\x01' in string literal"),
    (b'"a\tb"', "invalid character '\\t' in string literal"),
    (b'"a\nb"', "invalid character '\\n' in string literal"),
    (b"\xef\xbb\xbf{}", "invalid character 'ï' looking for beginning of value"),
    (b"[\xff]", "invalid character 'ÿ' looking for beginning of value"),
    (b"[\x80]", "invalid character '\\u0080' looking for beginning of value"),
    (b"[\xa0]", "invalid character '\\u00a0' looking for beginning of value"),
    (b"[\x00]", "invalid character '\\x00' looking for beginning of value"),
    (b"[\x7f]", "invalid character '\\x7f' looking for beginning of value"),
    (b'["a":1]', "invalid character ':' after array element"),
    (b"{1:2}", "invalid character '1' looking for beginning of object key string"),
    (b"/* c */ {}", "invalid character '/' looking for beginning of value"),
    (b"{}\x00", "invalid character '\\x00' after top-level value"),
    (b"[" * 10001, "invalid character '[' exceeded max depth"),
    (b"[" * 10000, "unexpected end of JSON input"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS)
def test_syntax_errors_carry_go_texts_exactly(text: bytes, message: str) -> None:
    """Each malformed input fails with the exact text Go's scanner produces for it."""
    assert not accepted_by_msgspec(text)
    with pytest.raises(GoSyntaxError) as exc:
        parse(text)
    assert exc.value.message == message
    with pytest.raises(ReferenceSyntaxError) as ref:
        reference_check_valid(text)
    assert (exc.value.message, exc.value.offset) == (ref.value.message, ref.value.offset)


@pytest.mark.parametrize(
    "text",
    [
        b"0",
        b"-0",
        b"-0.0e-0",
        b"1E+10",
        b"123456789012345678901234567890",
        b" \t\r\n{ } ",
        b'""',
        b'"\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\uDE00"',
        b'"\xff\xfe raw bytes are fine in strings"',
        b'[[],[{}],{"a":[null,true,false]}]',
        b"[" * 10000 + b"]" * 10000,
        b"\x7f".join([b'"', b'"']),
    ],
)
def test_valid_json_parses_like_go_accepts_it(text: bytes) -> None:
    """Inputs Go accepts (including odd but legal ones) parse without error."""
    reference_check_valid(text)
    parse(text)


def test_parse_tree_keeps_duplicate_keys_order_and_value_spans() -> None:
    """Objects keep every member in input order with the byte span of its value."""
    text = b'{"a": [1, "x"], "a" :null ,"b":{"c":true}}'
    tree = parse(text)
    assert isinstance(tree, JSONObject)
    keys = [key for key, _, _, _ in tree.members]
    assert keys == ["a", "a", "b"]
    spans = [text[start:end] for _, _, start, end in tree.members]
    assert spans == [b'[1, "x"]', b"null", b'{"c":true}']
    first = tree.members[0][1]
    assert isinstance(first, list)
    assert isinstance(first[0], JSONNumber)
    assert first[0].text == "1"
    assert first[1] == "x"


def test_quote_char_names_bytes_the_way_go_does() -> None:
    """A byte is shown as the rune of the same number, single quotes special-cased."""
    assert quote_char(ord("'")) == "'\\''"
    assert quote_char(ord('"')) == "'\"'"
    assert quote_char(ord("\\")) == "'\\\\'"
    assert quote_char(0xE9) == "'é'"
    assert quote_char(0xAD) == "'\\u00ad'"
    assert quote_char(0x0B) == "'\\v'"
    assert quote_char(0x1B) == "'\\x1b'"


STRING_DECODING = [
    (b"plain", "plain"),
    (b"\\u00e9\\u00E9", "éé"),
    (b"\\ud83d\\ude00", "😀"),
    (b"\\ud800", "\ufffd"),
    (b"\\udc00", "\ufffd"),
    (b"\\ud800\\u0041", "\ufffdA"),
    (b"\\ud800\\ud800\\udc00", "\ufffd\U00010000"),
    (b"\\udc00\\ud800", "\ufffd\ufffd"),
    (b"\xff", "\ufffd"),
    (b"\xe2\x82x", "\ufffd\ufffdx"),
    (b"\xed\xa0\x80", "\ufffd\ufffd\ufffd"),
    (b"\xc0\x80", "\ufffd\ufffd"),
    (b"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"),
    (b"\xef\xbf\xbd", "\ufffd"),
    (b"\xe2\x82\xac\\n\xff\\u20ac", "€\n\ufffd€"),
]


@pytest.mark.parametrize(("raw", "value"), STRING_DECODING)
def test_string_contents_decode_with_go_replacement_rules(raw: bytes, value: str) -> None:
    """Invalid UTF-8 bytes and unpaired surrogate escapes each become one U+FFFD."""
    assert decode_string(raw) == value
    assert reference_unquote(raw) == value


def test_random_string_contents_decode_like_the_reference_model() -> None:
    """Thousands of random valid string bodies decode exactly as Go's unquote model says."""
    rng = random.Random(20260401)
    pieces = [
        b"a",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"\xff",
        b"\x80",
        b"\xe2\x82",
        b"\xed\xa0\x80",
        b"\\n",
        b"\\u0041",
        b"\\ud800",
        b"\\udc00",
        b"\\uDBFF",
        b"\\uDFFF",
        b"\\/",
        b"\\\\",
    ]
    for _ in range(3000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
        assert decode_string(raw) == reference_unquote(raw), raw


def _mutations(rng: random.Random, seed: bytes) -> bytes:
    alphabet = b' \t\n{}[],:"\\-+.0123456789eEtrufalsn\x00\x1f\x7f\x80\xff/u'
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(3)
        pos = rng.randint(0, len(data))
        if op == 0:
            data[pos:pos] = bytes([rng.choice(alphabet)])
        elif op == 1 and pos < len(data):
            del data[pos]
        elif pos < len(data):
            data[pos] = rng.choice(alphabet)
    return bytes(data)


def test_mutated_inputs_fail_exactly_where_and_how_go_fails() -> None:
    """A bounded fuzz loop: parse agrees with the byte-by-byte Go scanner model on every input."""
    rng = random.Random(1234)
    seeds = [
        b'{"workflow_id":"wf","secrets":[{"key":"K","namespace":"main"}],"n":-1.5e+3}',
        b'[true,false,null,0,"\\u00e9\\n",{"a":[]}]',
        b'"\\ud800x"',
        b"  12  ",
    ]
    for _ in range(4000):
        text = _mutations(rng, rng.choice(seeds))
        try:
            reference_check_valid(text)
            expected = None
        except ReferenceSyntaxError as exc:
            expected = (exc.message, exc.offset)
        try:
            parse(text)
            got = None
        except GoSyntaxError as exc:
            got = (exc.message, exc.offset)
        assert got == expected, text
        # The compaction fast path trusts msgspec's acceptance: it must never accept more.
        if accepted_by_msgspec(text):
            assert expected is None, text


def test_big_inputs_parse_in_linear_time() -> None:
    """A megabyte string and a 50k-element array parse quickly (no per-byte Python loop)."""
    big = b'{"attestation":"' + b"A" * 1_000_000 + b'","n":[' + b"1," * 50_000 + b"1]}"
    tree = parse(big)
    assert isinstance(tree, JSONObject)
    value = tree.members[0][1]
    assert isinstance(value, str)
    assert len(value) == 1_000_000
    with pytest.raises(GoSyntaxError) as exc:
        parse(big[:-1])
    assert exc.value.message == "unexpected end of JSON input"


def test_compact_drops_only_insignificant_whitespace() -> None:
    """Compaction keeps string contents and number text, removes whitespace between tokens."""
    assert compact(b' { "a b" : [ 1.50 , "\\u0020 " ] }\n') == b'{"a b":[1.50,"\\u0020 "]}'
    assert compact(b"[1]") == b"[1]"
    with pytest.raises(GoSyntaxError):
        compact(b"[1,]")
