"""What `relay tail` prints for one message: subject parts, body decoding, shortening, headers."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from schemas import bus, rpc, subjects
from workers.cli import tail_format
from workers.cli.tail_format import (
    SHORTEN_AT,
    check_subject,
    decode_body,
    decode_subject,
    format_message,
    format_time,
    render,
    trace_id,
)

AT = datetime(2026, 1, 3, 10, 0, 0, 123456, tzinfo=UTC)
DON = "relay-don"
NODE = "node.0@eu"  # needs encoding: `.` and `@` are not token characters


def fmt(subject: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
    return format_message(subject, data, received=AT, **kwargs)


@pytest.mark.parametrize(
    ("subject", "parts"),
    [
        (subjects.rpc(DON, NODE), {"kind": "rpc", "don": DON, "node": NODE}),
        (subjects.verify(DON, NODE), {"kind": "verify", "don": DON, "node": NODE}),
        (
            subjects.registry(DON, NODE, "measurements.get"),
            {"kind": "registry", "don": DON, "node": NODE, "verb": "measurements.get"},
        ),
        (
            subjects.dispatch(DON, NODE, rpc.MethodSecretsGet),
            {"kind": "dispatch", "don": DON, "node": NODE, "method": rpc.MethodSecretsGet},
        ),
        (subjects.gateway(DON), {"kind": "gateway", "don": DON}),
        (
            subjects.gateway_reply(DON, "gw@1", NODE, 42),
            {
                "kind": "gateway-responses",
                "don": DON,
                "gateway": "gw@1",
                "node": NODE,
                "ticket": 42,
            },
        ),
        (
            subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet),
            {
                "kind": "capability",
                "capability": rpc.VaultCapabilityID,
                "method": rpc.VaultMethodSecretsGet,
            },
        ),
        (
            subjects.inbox_prefix("dispatch-secrets") + ".Xy9.12",
            {"kind": "inbox", "actor": "dispatch-secrets"},
        ),
    ],
)
def test_every_relay_subject_kind_is_decoded_into_its_parts(
    subject: str, parts: dict[str, Any]
) -> None:
    """Each subject built by `schemas.subjects` decodes back to its kind and decoded tokens."""
    assert decode_subject(subject) == parts
    assert fmt(subject, b"")["parts"] == parts


def test_a_node_named_gateway_is_still_a_node() -> None:
    """`relay.v1.<don>.gateway.rpc` is the rpc subject of a node called gateway."""
    assert decode_subject(subjects.rpc(DON, "gateway")) == {
        "kind": "rpc",
        "don": DON,
        "node": "gateway",
    }


@pytest.mark.parametrize(
    "subject",
    [
        "orders.created",
        "relay",
        "relay.v1.relay-don",
        "relay.v2.relay-don.node-0.rpc",
        "relay.v1.relay-don.node-0.unknown",
        "relay.v1.relay-don.node-0.rpc.extra",
        "relay.v1.relay-don.node-0.registry",
        "relay.v1.relay-don.node-0.dispatch.a.b",
        "relay.v1.relay-don.gateway.responses.gw.node-0.seven",
        "relay.v1.relay-don.gateway.responses.gw.node-0",
        "relay.v1.bad_zz.node-0.rpc",
        "relay.v1.relay-don.A_41.verify",
        "cap.v2.vault.get",
        "cap.v1.vault",
        "_INBOX.abc.1",
        "$SRV.INFO",
    ],
)
def test_other_or_malformed_subjects_have_no_parts(subject: str) -> None:
    """Anything that is not exactly one of the relay's subjects, canonically encoded, is null."""
    assert decode_subject(subject) is None
    assert fmt(subject, b"x")["parts"] is None


def test_a_bus_message_is_shown_as_its_json_with_the_long_document_shortened() -> None:
    """A VerifyRequest keeps its small fields whole and cuts the multi-KB document, saying so."""
    document = bytes(range(256)) * 12
    data = bus.ENCODER.encode(
        bus.VerifyRequest(
            document=document,
            expected_user_data=b"\x07" * 32,
            trusted_values=[b'{"pcr0":"' + b"ab" * 48 + b'"}'],
            measurements_revision=3,
        )
    )
    record = fmt(subjects.verify(DON, NODE), data, reply="_INBOX_ingress.a.1")
    body = record["body"]
    assert record["encoding"] == "json"
    assert record["size"] == len(data)
    assert record["reply"] == "_INBOX_ingress.a.1"
    assert body["type"] == "verify"
    assert body["measurements_revision"] == 3
    assert base64.b64decode(body["expected_user_data"]) == b"\x07" * 32
    assert base64.b64decode(body["trusted_values"][0]).startswith(b'{"pcr0":')
    full_document = base64.b64encode(document).decode()
    assert body["document"] == (
        f"{full_document[:24]}...{full_document[-8:]} [{len(full_document)} chars, --full shows all]"
    )
    assert record["shortened"] == ["body.document"]


def test_full_keeps_every_field_whole() -> None:
    """With `full` the long document is printed entirely and nothing is listed as shortened."""
    document = b"\xaa" * 3000
    data = bus.ENCODER.encode(
        bus.VerifyRequest(
            document=document, expected_user_data=b"", trusted_values=[], measurements_revision=1
        )
    )
    record = fmt(subjects.verify(DON, NODE), data, full=True)
    assert base64.b64decode(record["body"]["document"]) == document
    assert record["shortened"] == []


def test_a_json_rpc_request_shows_its_params_with_the_attestation_shortened() -> None:
    """Go-style JSON-RPC on the rpc subject: nested attestation cut, the rest verbatim."""
    attestation = base64.b64encode(b'\x84D\xa1\x018"' * 600).decode()
    request = {
        "jsonrpc": "2.0",
        "id": "req-1",
        "method": rpc.MethodSecretsGet,
        "params": {"secrets": [{"key": "k", "namespace": "main"}], "attestation": attestation},
    }
    record = fmt(subjects.rpc(DON, NODE), json.dumps(request).encode())
    params = record["body"]["params"]
    assert params["secrets"] == [{"key": "k", "namespace": "main"}]
    assert params["attestation"].startswith(attestation[:24] + "...")
    assert f"[{len(attestation)} chars" in params["attestation"]
    assert record["shortened"] == ["body.params.attestation"]


def test_shortened_paths_name_list_items() -> None:
    """A long base64 string inside a list is reported with its index."""
    blob = "A" * SHORTEN_AT
    record = fmt("x", json.dumps({"values": ["short", blob]}).encode())
    assert record["body"]["values"][0] == "short"
    assert record["shortened"] == ["body.values[1]"]


def test_strings_just_under_the_threshold_or_not_base64_are_left_alone() -> None:
    """Shortening is only for long base64-looking strings: prose and short blobs stay whole."""
    almost = "B" * (SHORTEN_AT - 1)
    prose = "a sentence with spaces " * 40
    record = fmt("x", json.dumps({"a": almost, "b": prose}).encode())
    assert record["body"] == {"a": almost, "b": prose}
    assert record["shortened"] == []


def test_a_body_that_is_not_json_is_shown_as_text() -> None:
    """UTF-8 that does not parse as JSON is printed as the text itself."""
    record = fmt("x", "hello, wörld\n".encode())
    assert record["encoding"] == "text"
    assert record["body"] == "hello, wörld\n"


def test_a_binary_body_is_shown_as_base64() -> None:
    """Bytes that are not UTF-8 (a protobuf, say) are printed as base64."""
    data = b"\x0a\x03abc\xff\xfe"
    record = fmt("x", data)
    assert record["encoding"] == "base64"
    assert base64.b64decode(record["body"]) == data
    assert record["size"] == len(data)


def test_valid_utf8_with_control_characters_counts_as_binary() -> None:
    """A small protobuf can be valid UTF-8; its control bytes still make it base64."""
    data = b"\x08\x01\x12\x02hi"
    assert decode_body(data) == ("base64", base64.b64encode(data).decode())


def test_a_long_binary_body_is_shortened_as_a_whole() -> None:
    """A multi-KB binary body becomes a shortened base64 string, listed as `body`."""
    record = fmt("x", b"\xff" * 2000)
    assert record["encoding"] == "base64"
    assert record["body"].endswith("[2668 chars, --full shows all]")
    assert record["shortened"] == ["body"]
    assert base64.b64decode(fmt("x", b"\xff" * 2000, full=True)["body"]) == b"\xff" * 2000


def test_an_empty_body_is_null() -> None:
    """No payload (a ping, a no-responders status) is encoding `empty` and body null."""
    record = fmt("x", b"")
    assert (record["encoding"], record["body"], record["size"]) == ("empty", None, 0)


@pytest.mark.parametrize("data", [b"NaN", b'{"a": Infinity}', b"[1e400]"])
def test_json_that_jq_could_not_read_is_shown_as_text(data: bytes) -> None:
    """NaN, Infinity and numbers beyond float64 are not strict JSON, so they stay text."""
    record = fmt("x", data)
    assert record["encoding"] == "text"
    assert record["body"] == data.decode()


def test_big_integers_survive_exactly() -> None:
    """A uint64 id is printed digit for digit, not rounded through a float."""
    record = fmt("x", b'{"don_id": 18446744073709551615}')
    assert record["body"] == {"don_id": 18446744073709551615}


def test_headers_are_copied_and_absent_headers_are_null() -> None:
    """Headers appear as a JSON object; a message without headers has null, not {}."""
    with_headers = fmt("x", b"{}", headers={"Relay-Node": "node-0", "Nats-Msg-Id": "7"})
    assert with_headers["headers"] == {"Relay-Node": "node-0", "Nats-Msg-Id": "7"}
    assert fmt("x", b"{}")["headers"] is None
    assert fmt("x", b"{}", headers={})["headers"] == {}


def test_an_empty_reply_subject_is_null() -> None:
    """nats-py gives '' for no reply subject; the record says null."""
    assert fmt("x", b"", reply="")["reply"] is None


def test_the_receive_time_is_iso8601_utc_with_microseconds() -> None:
    """Any aware datetime is converted to UTC and printed with a Z."""
    assert fmt("x", b"")["received"] == "2026-01-03T10:00:00.123456Z"
    paris = AT.astimezone(timezone(timedelta(hours=1)))
    assert format_time(paris) == "2026-01-03T10:00:00.123456Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 1, 3))  # naive on purpose


def test_the_record_keys_come_in_a_fixed_order() -> None:
    """Subject first and body last, so a pretty record reads top-down."""
    assert list(fmt("x", b"")) == [
        "subject",
        "parts",
        "received",
        "reply",
        "headers",
        "trace",
        "size",
        "encoding",
        "body",
        "shortened",
    ]


def test_the_trace_id_of_a_traceparent_header_is_shown() -> None:
    """A W3C traceparent gives its trace id; none, or a malformed or invalid one, gives null."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    good = {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    assert fmt("x", b"", headers=good)["trace"] == trace
    assert trace_id({"traceparent": f"01-{trace}-00f067aa0ba902b7-01-future"}) == trace
    assert fmt("x", b"")["trace"] is None
    for bad in (
        f"00-{trace}-00f067aa0ba902b7",  # no flags
        f"ff-{trace}-00f067aa0ba902b7-01",  # forbidden version
        f"00-{'0' * 32}-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{trace}-{'0' * 16}-01",  # all-zero parent id
        f"00-{trace.upper()}-00f067aa0ba902b7-01",  # upper case is not W3C
        f"00-{trace}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
    ):
        assert trace_id({"traceparent": bad}) is None, bad


def test_compact_rendering_is_one_line_and_pretty_rendering_is_indented() -> None:
    """Both renderings are the same JSON; compact has no newline, pretty has two-space indents."""
    record = fmt(subjects.verify(DON, NODE), b'{"text": "line1\\nline2 \xc3\xa9"}')
    compact = render(record, compact=True)
    pretty = render(record)
    assert "\n" not in compact
    assert "é" in compact  # UTF-8 kept readable, not \u escaped
    assert pretty.startswith('{\n  "subject": ')
    assert json.loads(compact) == json.loads(pretty) == record


@pytest.mark.parametrize(
    "subject",
    ["relay.>", "relay.v1.*.node-0.>", "cap.*.*.*", ">", "*", "relay.v1.relay-don.node-0.rpc"],
)
def test_valid_subscription_subjects_pass(subject: str) -> None:
    """Concrete subjects and whole-token wildcards are accepted."""
    assert check_subject(subject) is None


@pytest.mark.parametrize(
    ("subject", "problem"),
    [
        ("", "empty"),
        ("relay..rpc", "empty token"),
        (".relay", "empty token"),
        ("relay.", "empty token"),
        ("relay.>.rpc", "'>' can only be the last token"),
        ("relay.v1*", "wildcards must be whole tokens"),
        ("relay.a>", "wildcards must be whole tokens"),
        ("relay v1", "whitespace"),
        ("relay.\tv1", "whitespace"),
    ],
)
def test_invalid_subscription_subjects_say_why(subject: str, problem: str) -> None:
    """Each NATS subject rule broken gets its own explanation."""
    reason = check_subject(subject)
    assert reason is not None
    assert problem in reason


def test_the_threshold_keeps_a_registry_trusted_value_whole() -> None:
    """A three-PCR trusted value, base64 in a Measurements reply, is below SHORTEN_AT."""
    pcrs = json.dumps({f"pcr{i}": "ab" * 48 for i in range(3)}).encode()
    data = bus.ENCODER.encode(bus.Measurements(revision=1, trusted_values=[pcrs]))
    record = fmt(subjects.registry(DON, NODE, "measurements.get"), data)
    assert base64.b64decode(record["body"]["trusted_values"][0]) == pcrs
    assert record["shortened"] == []
    assert tail_format.KEEP_HEAD + tail_format.KEEP_TAIL < SHORTEN_AT


def test_c1_controls_del_and_bidi_overrides_are_escaped_in_the_printed_json() -> None:
    """json.dumps leaves them raw; a terminal would act on CSI/OSC or reorder the text."""
    record = format_message(
        "relay.v1.d.n.rpc", b'{"id":"a\\u009b2J\\u202e\\u007f"}', received=datetime.now(UTC)
    )
    for compact in (True, False):
        text = render(record, compact=compact)
        assert not any(ch in text for ch in ("\x9b", "\u202e", "\x7f"))
        assert json.loads(text)["body"]["id"] == "a\x9b2J\u202e\x7f"


def test_a_body_nested_too_deep_for_json_display_is_shown_as_text() -> None:
    """Five thousand levels: not dropped (json.loads would recurse), shown as its text."""
    deep = b"[" * 5000 + b"]" * 5000
    encoding, body = decode_body(deep)
    assert (encoding, body) == ("text", deep.decode())
