"""What `relay tail` prints for one NATS message: a pure function, bytes and subject in, dict out.

`format_message` decodes the subject when it is one of the relay's own (`schemas.subjects`), and
the body: JSON is shown as JSON (the bus messages are msgspec JSON, the rpc subjects carry
Go-style JSON-RPC), other UTF-8 text as text, anything else as base64. Long base64 strings (an
`attestation`, a Nitro `document`: a few KB each) are shortened unless `full`; the paths of the
shortened fields are listed under `shortened`, so nothing is cut silently.

No sockets, no clock: the receive time is a parameter, so everything here is unit-tested.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from schemas import subjects

SHORTEN_AT = 512
"""Base64-looking strings of at least this many characters are shortened unless `full`.

Large enough that a registry trusted value (base64 of a PCR JSON object, ~450 characters) stays
whole, small enough that an attestation document (several KB) does not flood the terminal.
"""

KEEP_HEAD = 24
KEEP_TAIL = 8

_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
# Control characters other than tab, CR and LF: valid UTF-8, but binary in practice (protobuf).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# What a terminal may act on: C0 and C1 controls (ESC, CSI, OSC...), DEL, and the bidirectional
# overrides that reorder what an operator reads. Bodies, subjects and headers come from clients.
_BEYOND_C0_UNSAFE = "\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069"
_TERMINAL_UNSAFE = re.compile(f"[\\x00-\\x1f{_BEYOND_C0_UNSAFE}]")
_JSON_UNSAFE = re.compile(f"[{_BEYOND_C0_UNSAFE}]")  # json.dumps escapes C0 in strings itself
# How deep a JSON body may nest and still be shown as JSON (deeper ones are shown as text).
MAX_JSON_DEPTH = 64

# Stages directly under a node: relay.v1.<don>.<node>.<stage>[.<token>]
_NODE_STAGES = {"rpc": None, "verify": None, "registry": "verb", "dispatch": "method"}


def check_subject(subject: str) -> str | None:
    """Why `subject` cannot be subscribed to (NATS subject rules), or None when it can.

    Tokens are separated by `.` and may not be empty; `*` matches one token and `>` the rest,
    each only as a whole token, `>` only at the end; no whitespace anywhere.
    """
    if not subject:
        return "the subject is empty"
    if any(ch.isspace() for ch in subject):
        return "a subject cannot contain whitespace"
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token:
            return "a subject cannot have an empty token (leading, trailing or doubled '.')"
        if ("*" in token or ">" in token) and len(token) > 1:
            return f"wildcards must be whole tokens, not {token!r}"
        if token == ">" and i != len(tokens) - 1:
            return "'>' can only be the last token"
    return None


def decode_subject(subject: str) -> dict[str, Any] | None:
    """The parts of one of the relay's own subjects, or None for any other subject.

    Kinds: `rpc`, `verify`, `registry` (+ `verb`), `dispatch` (+ `method`), `gateway`,
    `gateway-responses` (+ `gateway`, `node`, `ticket`) with `don` and, below a node, `node`;
    `capability` (`capability`, `method`); `inbox` (a requester's reply inbox, `actor`).
    Tokens are decoded with `subjects.decode_token`; a token the encoder could not have produced
    means the subject is not one of ours.
    """
    tokens = subject.split(".")
    try:
        if tokens[0] == subjects.RELAY_ROOT and len(tokens) >= 4 and tokens[1] == subjects.VERSION:
            return _decode_relay(tokens)
        if tokens[0] == subjects.CAPABILITY_ROOT and len(tokens) == 4:
            if tokens[1] != subjects.VERSION:
                return None
            return {
                "kind": "capability",
                "capability": subjects.decode_token(tokens[2]),
                "method": subjects.decode_token(tokens[3]),
            }
        inbox = "_INBOX_"
        if tokens[0].startswith(inbox) and len(tokens[0]) > len(inbox) and len(tokens) >= 2:
            return {"kind": "inbox", "actor": subjects.decode_token(tokens[0][len(inbox) :])}
    except ValueError:
        return None
    return None


def _decode_relay(tokens: list[str]) -> dict[str, Any] | None:
    don = subjects.decode_token(tokens[2])
    if tokens[3] == "gateway" and len(tokens) == 4:
        return {"kind": "gateway", "don": don}
    if tokens[3] == "gateway" and len(tokens) == 8 and tokens[4] == "responses":
        ticket = tokens[7]
        if not ticket.isdecimal() or not ticket.isascii():
            return None
        return {
            "kind": "gateway-responses",
            "don": don,
            "gateway": subjects.decode_token(tokens[5]),
            "node": subjects.decode_token(tokens[6]),
            "ticket": int(ticket),
        }
    if len(tokens) < 5 or tokens[4] not in _NODE_STAGES:
        return None
    stage = tokens[4]
    detail = _NODE_STAGES[stage]
    parts: dict[str, Any] = {"kind": stage, "don": don, "node": subjects.decode_token(tokens[3])}
    if detail is None:
        return parts if len(tokens) == 5 else None
    if len(tokens) != 6:
        return None
    parts[detail] = subjects.decode_token(tokens[5])
    return parts


_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


def trace_id(headers: Mapping[str, str] | None) -> str | None:
    """The W3C trace id a message carries in its `traceparent` header (32 hex digits), or None
    when it has none or a malformed one (version ff, all-zero ids, wrong lengths), as W3C says."""
    if not headers:
        return None
    value = headers.get("traceparent")
    if value is None:
        return None
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return None
    version, trace, parent, _, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or set(trace) == {"0"} or set(parent) == {"0"}:
        return None
    return trace


def format_time(moment: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a `Z`, e.g. `2026-01-03T10:00:00.123456Z`."""
    if moment.tzinfo is None:
        raise ValueError("the receive time must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def shorten(text: str) -> str:
    """A long base64 string cut to its ends, with its length: `hEShATgi...Zm9v [5460 chars]`."""
    return f"{text[:KEEP_HEAD]}...{text[-KEEP_TAIL:]} [{len(text)} chars, --full shows all]"


def _is_long_base64(text: str) -> bool:
    return len(text) >= SHORTEN_AT and _BASE64.fullmatch(text) is not None


def _shorten_tree(value: Any, path: str, cut: list[str]) -> Any:
    if isinstance(value, str):
        if _is_long_base64(value):
            cut.append(path)
            return shorten(value)
        return value
    if isinstance(value, dict):
        return {key: _shorten_tree(item, f"{path}.{key}", cut) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten_tree(item, f"{path}[{i}]", cut) for i, item in enumerate(value)]
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text} does not fit a float64")
    return number


def decode_body(data: bytes) -> tuple[str, Any]:
    """(encoding, body): `empty` None, `json` the parsed value, `text` a str, `base64` a str.

    JSON means strict JSON (no NaN or Infinity, no number a float64 cannot hold), so what is
    printed is always valid JSON for jq. Text with control characters other than tab, CR and LF
    is treated as binary.
    """
    if not data:
        return "empty", None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(data).decode("ascii")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        pass
    else:
        if _depth_at_most(value, MAX_JSON_DEPTH):
            return "json", value
    if _CONTROL.search(text):
        return "base64", base64.b64encode(data).decode("ascii")
    return "text", text


def _depth_at_most(value: Any, limit: int) -> bool:
    """Whether `value` nests at most `limit` containers deep (iterative: no recursion limit)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def _escape_unsafe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def terminal_safe(text: str) -> str:
    """`text` with every character a terminal may act on written as a `\\uXXXX` escape: valid
    inside a JSON string, and harmless (visible) in a table."""
    return _TERMINAL_UNSAFE.sub(_escape_unsafe, text)


def format_message(
    subject: str,
    data: bytes,
    *,
    received: datetime,
    reply: str | None = None,
    headers: Mapping[str, str] | None = None,
    full: bool = False,
) -> dict[str, Any]:
    """One message as `relay tail` prints it (a JSON object; keys in this order).

    `subject`, `parts` (`decode_subject`, or null), `received` (ISO-8601 UTC), `reply` (or
    null), `headers` (or null when the message has none), `trace` (the W3C trace id of its
    `traceparent`, or null), `size` (body bytes), `encoding`
    (`json`, `text`, `base64` or `empty`), `body`, and `shortened`: the paths (`body.document`,
    `body.params[0].attestation`, `body` itself) of the strings shortened because `full` was
    not set.
    """
    encoding, body = decode_body(data)
    cut: list[str] = []
    if not full:
        body = _shorten_tree(body, "body", cut)
    return {
        "subject": subject,
        "parts": decode_subject(subject),
        "received": format_time(received),
        "reply": reply or None,
        "headers": dict(headers) if headers is not None else None,
        "trace": trace_id(headers),
        "size": len(data),
        "encoding": encoding,
        "body": body,
        "shortened": cut,
    }


def render(record: Mapping[str, Any], *, compact: bool = False) -> str:
    """The record as pretty JSON (default) or one line (`compact`, for grep and jq); no newline."""
    return render_json(record, compact=compact)


def render_json(value: Any, *, compact: bool = False) -> str:
    """Any JSON value as `render` prints it: readable UTF-8, but terminal-safe."""
    if compact:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(value, ensure_ascii=False, indent=2)
    # json escapes C0 itself; DEL, C1 and bidi controls it leaves raw (valid JSON, unsafe on a
    # terminal). Outside strings the output has only ASCII, so this touches strings only.
    return _JSON_UNSAFE.sub(_escape_unsafe, text)
