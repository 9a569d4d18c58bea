"""Go `json.Marshal` output from `schemas.gojson`: string escaping, raw values, %q quoting."""

from __future__ import annotations

import random

import pytest

from schemas.gojson import GoMarshalError, go_raw, go_string
from schemas.gojson_strconv import go_quote
from tests.unit.schemas.test_gojson_reference import reference_go_string

ESCAPES = [
    ("", b'""'),
    ("plain ascii ~", b'"plain ascii ~"'),
    ('"', b'"\\""'),
    ("\\", b'"\\\\"'),
    ("/", b'"/"'),
    ("\n\r\t", b'"\\n\\r\\t"'),
    ("\b\f", b'"\\b\\f"'),
    ("\x00\x01\x0b\x1f", b'"\\u0000\\u0001\\u000b\\u001f"'),
    ("\x1a", b'"\\u001a"'),
    ("\x7f", b'"\x7f"'),
    ("<a href='x'>&amp;</a>", b"\"\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e\""),
    ("\u2028\u2029", b'"\\u2028\\u2029"'),
    ("\u2027\u202a", '"\u2027\u202a"'.encode()),
    ("é€😀", '"é€😀"'.encode()),
    ("\ufffd", '"\ufffd"'.encode()),
    ("\u00a0\u00ad", '"\u00a0\u00ad"'.encode()),
    ("\ud800", b'"\\ufffd\\ufffd\\ufffd"'),  # Go would hold its 3 invalid bytes
    ("a\udcffb", b'"a\\ufffdb"'),
    ("<\udc80>", b'"\\u003c\\ufffd\\u003e"'),
]


@pytest.mark.parametrize(("value", "encoded"), ESCAPES)
def test_strings_encode_byte_for_byte_as_go_marshal(value: str, encoded: bytes) -> None:
    """Every escaping rule of Go 1.22+ json.Marshal, including HTML-safe and invalid text."""
    assert go_string(value) == encoded
    assert reference_go_string(value) == encoded


def test_random_strings_encode_like_the_reference_model() -> None:
    """A bounded fuzz loop: the fast encoder equals the per-byte Go model on random text."""
    rng = random.Random(7)
    pool = [chr(c) for c in range(0x00, 0x80)] + [
        "é",
        "€",
        "😀",
        "\u2028",
        "\u2029",
        "\ufffd",
        "\ud800",
        "\udc80",
        "\udfff",
        "\U0010ffff",
    ]
    for _ in range(3000):
        value = "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        assert go_string(value) == reference_go_string(value), repr(value)


def test_raw_values_are_compacted_and_html_escaped_like_raw_message() -> None:
    """A json.RawMessage keeps number text and escapes, drops whitespace, escapes <>& U+2028."""
    raw = b' { "a" : [ 1.50 , 1e3 ] , "b" : "<\xe2\x80\xa8&\\u003c>" , "c" : null } '
    expected = b'{"a":[1.50,1e3],"b":"\\u003c\\u2028\\u0026\\u003c\\u003e","c":null}'
    assert go_raw(raw) == expected
    assert go_raw(b"null") == b"null"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "unexpected end of JSON input"),
        (b"{", "unexpected end of JSON input"),
        (b"[1,]", "invalid character ']' looking for beginning of value"),
        (b"{} {}", "invalid character '{' after top-level value"),
    ],
)
def test_invalid_raw_values_fail_with_go_marshal_error_text(raw: bytes, message: str) -> None:
    """Marshalling an invalid RawMessage fails with Go's MarshalJSON error wording."""
    with pytest.raises(GoMarshalError) as exc:
        go_raw(raw)
    assert exc.value.message == (
        f"json: error calling MarshalJSON for type *json.RawMessage: {message}"
    )


QUOTES = [
    ("", '""'),
    ("0xab", '"0xab"'),
    ('say "hi"\\', '"say \\"hi\\"\\\\"'),
    ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
    ("\x00\x1b\x7f", '"\\x00\\x1b\\x7f"'),
    ("é€😀", '"é€😀"'),
    ("\u00a0\u00ad\u2028\ufeff", '"\\u00a0\\u00ad\\u2028\\ufeff"'),
    ("\U000e0001", '"\\U000e0001"'),
    ("\ufffd", '"\ufffd"'),
    (b"\xff\xfe", '"\\xff\\xfe"'),
    (b"a\xe2\x82", '"a\\xe2\\x82"'),
    (b"\xed\xa0\x80", '"\\xed\\xa0\\x80"'),
    ("\udcff", '"\\xff"'),
    ("\ud800", '"\\xed\\xa0\\x80"'),
]


@pytest.mark.parametrize(("value", "quoted"), QUOTES)
def test_go_quote_matches_strconv_quote(value: str | bytes, quoted: str) -> None:
    """Go's %q: short escapes, \\x for bad bytes and controls, \\u/\\U for non-printables."""
    assert go_quote(value) == quoted
