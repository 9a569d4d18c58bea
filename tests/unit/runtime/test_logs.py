"""Structured logs: the extra fields (the full internal error) survive, secrets do not."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from workers.runtime.logs import REDACTED, JsonFormatter, TextFormatter, configure


def _record(msg: str = "request error", **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "relay.ingress", "levelname": "ERROR", "msg": msg})
    record.__dict__.update(extra)
    return record


def test_a_request_error_keeps_its_code_and_full_detail_in_the_json_line() -> None:
    """What the wire never sees (the detail) is in the log line, with the actor and the time."""
    line = JsonFormatter("ingress").format(
        _record(request_id="req-1", errorCode=-32603, err="vault execute failed: boom")
    )
    entry = json.loads(line)
    assert entry["msg"] == "request error"
    assert entry["actor"] == "ingress"
    assert entry["logger"] == "relay.ingress"
    assert (entry["request_id"], entry["errorCode"], entry["err"]) == (
        "req-1",
        -32603,
        "vault execute failed: boom",
    )
    assert entry["ts"].endswith("+00:00")


def test_fields_named_like_secrets_are_redacted_in_both_formats() -> None:
    """A password, a secret or a private key passed as `extra` never reaches the log text."""
    record = _record(password="hunter2", secret_value="s3cr3t", private_key="k", user="ops")
    entry = json.loads(JsonFormatter("x").format(record))
    assert entry["password"] == entry["secret_value"] == entry["private_key"] == REDACTED
    assert entry["user"] == "ops"
    text = TextFormatter("x").format(record)
    assert "hunter2" not in text
    assert "s3cr3t" not in text
    assert "user='ops'" in text


def test_fields_named_like_keys_material_are_redacted_too() -> None:
    """An nkey seed, key shares, a token or a JWT passed as `extra` are redacted by name."""
    record = _record(nkey_seed="SUAM", shares=["s1"], auth_token="t", user_jwt="j", node="n0")
    entry = json.loads(JsonFormatter("x").format(record))
    assert entry["nkey_seed"] == entry["shares"] == entry["auth_token"] == REDACTED
    assert entry["user_jwt"] == REDACTED
    assert entry["node"] == "n0"


def test_values_that_are_not_json_are_written_as_their_repr() -> None:
    """Bytes and objects in `extra` do not break the line."""
    entry = json.loads(JsonFormatter("x").format(_record(raw=b"\x00\xff", items=(1, 2))))
    assert entry["raw"] == repr(b"\x00\xff")
    assert entry["items"] == "(1, 2)"


def test_an_exception_is_one_field_of_one_line() -> None:
    """A traceback stays inside the JSON object, so one record is always one line."""
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.makeLogRecord({"msg": "failed"})
        record.exc_info = sys.exc_info()
    line = JsonFormatter("x").format(record)
    assert "\n" not in line
    assert "ValueError: bad" in json.loads(line)["exc"]


def test_configure_refuses_an_unknown_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """RELAY_LOG_FORMAT is json or text; anything else is an error, not a silent default."""
    monkeypatch.setenv("RELAY_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="RELAY_LOG_FORMAT"):
        configure("x")


def test_a_line_logged_inside_a_traced_request_carries_its_trace_id() -> None:
    """With tracing on, a line logged in a span names the trace; outside a span or off, none."""
    from opentelemetry.sdk.trace import TracerProvider

    from workers.runtime import tracing

    formatter = JsonFormatter("ingress")
    assert "trace_id" not in json.loads(formatter.format(_record()))
    with tracing.installed(TracerProvider()):
        assert "trace_id" not in json.loads(formatter.format(_record()))
        with tracing.span("request") as span:
            entry = json.loads(formatter.format(_record()))
            assert span is not None
            assert entry["trace_id"] == format(span.get_span_context().trace_id, "032x")
