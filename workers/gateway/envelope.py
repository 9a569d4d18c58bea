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
from typing import Any

import msgspec
import rfc8785

from schemas import rpc


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


class MalformedNodeResponse(ValueError):
    """The node message is not a JSON-RPC response envelope.

    Stricter than Go in two corners: msgspec refuses a lone UTF-16 surrogate escape (`"\\ud800"`)
    that Go would read as U+FFFD, and nesting past about 1,000 levels (Go: 10,000). Honest relays
    send neither (they re-marshal decoded text; results are flat).
    """


class DigestError(ValueError):
    """The envelope has no RFC 8785 canonical form (e.g. a number outside float64)."""


def decode_node_response(data: bytes) -> NodeResponse:
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise MalformedNodeResponse(f"not a JSON-RPC response: {exc}") from exc
    except RecursionError as exc:  # about 1,000 levels: no honest node's result nests so deep
        raise MalformedNodeResponse("not a JSON-RPC response: nested too deeply") from exc


def _present(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and bytes(raw) != b"null"


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 8785 takes I-JSON only: a repeated member name has no canonical form. Reading the last
    # one instead would let `{"p":"forged","p":"ok"}` vote with the honest `{"p":"ok"}`, while a
    # parser that keeps the first member reads "forged" from the very bytes forwarded.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"member {key[:64]!r} repeated")
        out[key] = value
    return out


def _canonical_value(raw: msgspec.Raw) -> Any:
    # Every number is read as a float64, as Go's JCS implementations do, so a large integer
    # canonicalises the way Go would write it instead of failing the safe-integer check.
    return json.loads(bytes(raw), parse_int=float, object_pairs_hook=_unique_members)


def digest(resp: NodeResponse) -> str:
    """SHA-256 hex of the RFC 8785 canonical JSON of the whole envelope, errors included."""
    envelope: dict[str, Any] = {"jsonrpc": resp.jsonrpc, "id": resp.id, "method": resp.method}
    try:
        if _present(resp.result):
            envelope["result"] = _canonical_value(resp.result)
        if resp.error is not None:
            # The code too is a float64 to JCS (an integer past 2**53 still canonicalises).
            error: dict[str, Any] = {"code": float(resp.error.code), "message": resp.error.message}
            if _present(resp.error.data):
                error["data"] = _canonical_value(resp.error.data)
            envelope["error"] = error
        canonical = rfc8785.dumps(envelope)
    except (ValueError, RecursionError) as exc:
        raise DigestError(f"cannot canonicalise the response: {exc}") from exc
    return hashlib.sha256(canonical).hexdigest()


def encode_node_response(resp: NodeResponse) -> bytes:
    """The chosen envelope as Go's json.Marshal writes it (raw values compacted, HTML-escaped).

    Raises `GoJSONError` if a raw value cannot be re-encoded (NodeReponseEncodingError upstream).
    """
    error = None
    if resp.error is not None:
        data = bytes(resp.error.data) if _present(resp.error.data) else None
        error = rpc.WireError(code=resp.error.code, message=resp.error.message, data=data)
    result = bytes(resp.result) if _present(resp.result) else None
    return rpc.encode_envelope(
        rpc.Response(
            jsonrpc=resp.jsonrpc, id=resp.id, method=resp.method, result=result, error=error
        )
    )


def encode_gateway_error(request_id: str, rpc_code: int, message: str) -> bytes:
    """Upstream's EncodeNewErrorResponse: empty method, `"data":null`."""
    return rpc.encode_error_response(
        id=request_id, method="", code=rpc_code, message=message, data=b"null"
    )
