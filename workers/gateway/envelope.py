"""Node responses as the gateway sees them: decoding, the G0 digest, and re-encoding for the enclave.

Decoding follows Go's `jsonrpc.Response[json.RawMessage]`: unknown keys are ignored, `result` is
raw JSON, and a `null` result or error `data` counts as absent (they are pointers upstream).
The digest (PROTOCOL 8.3) is SHA-256 over the RFC 8785 canonical form of that decoded envelope,
so key order and whitespace differences between nodes do not matter, while any content
difference does.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec
import rfc8785


class WireError(msgspec.Struct, frozen=True, kw_only=True):
    code: int = 0
    message: str = ""
    data: msgspec.Raw = msgspec.Raw()


class NodeResponse(msgspec.Struct, frozen=True, kw_only=True):
    """One relay node's JSON-RPC response envelope."""

    jsonrpc: str = ""
    id: str = ""
    method: str = ""
    result: msgspec.Raw = msgspec.Raw()
    error: WireError | None = None


_DECODER = msgspec.json.Decoder(NodeResponse)


# Go's json.Marshal escapes these even inside strings (its HTML-safe default); valid JSON can only
# hold them inside strings, so a byte-level replacement after compaction is exact.
_HTML_SAFE = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_escape(encoded: bytes) -> bytes:
    for raw, escaped in _HTML_SAFE:
        if raw in encoded:
            encoded = encoded.replace(raw, escaped)
    return encoded


def go_string(value: str) -> bytes:
    """A JSON string exactly as Go 1.22+ encodes it (short escapes, HTML-safe, raw UTF-8)."""
    # Python's json module already matches Go for quotes, backslashes, \b\f\n\r\t and the
    # lowercase \u00XX of other control characters; Go writes invalid text as U+FFFD.
    text = json.dumps(_SURROGATE.sub("\ufffd", value), ensure_ascii=False)
    return _go_escape(text.encode("utf-8"))


def go_raw(raw: bytes) -> bytes:
    """A json.RawMessage as Go marshals it: compacted (number and string text kept), HTML-safe."""
    return _go_escape(msgspec.json.format(raw, indent=-1))


class MalformedNodeResponse(ValueError):
    """The node message is not a JSON-RPC response envelope.

    Stricter than Go in one corner: msgspec refuses a lone UTF-16 surrogate escape (`"\\ud800"`)
    that Go would read as U+FFFD. Honest relays never send one (they re-marshal decoded text).
    """


class DigestError(ValueError):
    """The envelope has no RFC 8785 canonical form (e.g. a number outside float64)."""


def decode_node_response(data: bytes) -> NodeResponse:
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedNodeResponse(f"not a JSON-RPC response: {exc}") from exc


def _present(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw) != b"null"


def _canonical_value(raw: msgspec.Raw) -> Any:
    # Every number is read as a float64, as Go's JCS implementations do, so a large integer
    # canonicalises the way Go would write it instead of failing the safe-integer check.
    return json.loads(bytes(raw), parse_int=float)


def digest(resp: NodeResponse) -> str:
    """SHA-256 hex of the RFC 8785 canonical JSON of the whole envelope, errors included."""
    envelope: dict[str, Any] = {"jsonrpc": resp.jsonrpc, "id": resp.id, "method": resp.method}
    try:
        if _present(resp.result):
            envelope["result"] = _canonical_value(resp.result)
        if resp.error is not None:
            error: dict[str, Any] = {"code": resp.error.code, "message": resp.error.message}
            if _present(resp.error.data):
                error["data"] = _canonical_value(resp.error.data)
            envelope["error"] = error
        canonical = rfc8785.dumps(envelope)
    except (ValueError, RecursionError) as exc:
        raise DigestError(f"cannot canonicalise the response: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()


def encode_node_response(resp: NodeResponse) -> bytes:
    """The chosen envelope as Go's json.Marshal writes it (raw values compacted, HTML-escaped)."""
    parts = [
        b'{"jsonrpc":',
        go_string(resp.jsonrpc),
        b',"id":',
        go_string(resp.id),
        b',"method":',
        go_string(resp.method),
    ]
    if _present(resp.result):
        parts += [b',"result":', go_raw(bytes(resp.result))]
    if resp.error is not None:
        parts += [
            b',"error":{"code":',
            str(resp.error.code).encode(),
            b',"message":',
            go_string(resp.error.message),
        ]
        if _present(resp.error.data):
            parts += [b',"data":', go_raw(bytes(resp.error.data))]
        parts.append(b"}")
    parts.append(b"}")
    return b"".join(parts)


def encode_gateway_error(request_id: str, rpc_code: int, message: str) -> bytes:
    """Upstream's EncodeNewErrorResponse: empty method, `"data":null`."""
    return b"".join(
        [
            b'{"jsonrpc":"2.0","id":',
            go_string(request_id),
            b',"method":"","error":{"code":',
            str(rpc_code).encode(),
            b',"message":',
            go_string(message),
            b',"data":null}}',
        ]
    )
