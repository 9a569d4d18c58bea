"""What the gateway framework checks before the relay handler sees a request (PROTOCOL 1.2 step 2).

Shared by the HTTP and NATS fronts: the body must be one JSON-RPC 2.0 request object with a
string id of at most 200 bytes, a non-empty method and params present. Failures are
UserMessageParseError (-32700, HTTP 400) with upstream's `user message parse error: ` prefix.
Methods are routed by the service name before the first `.`, as upstream's gateway does: only
`confidential.*` reaches this handler; a `confidential.*` method the relay does not serve is
still forwarded and the nodes answer "method not found" by quorum.

The handler's own id rules (empty, duplicate) run later, in `GatewayHandler.submit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from schemas import rpc
from schemas.gojson import GoJSONError, GoSyntaxError
from workers.gateway import envelope
from workers.gateway.errors import ErrorCode, GatewayReply, wire_message
from workers.gateway.handler import MAX_REQUEST_ID_BYTES, UserRequest

SERVICE_NAME = rpc.GatewayServiceName


class _LegacyProbe(msgspec.Struct, frozen=True):
    # Only to recognise upstream's legacy (pre-JSON-RPC) message: {"body": {...}, "signature": ...}.
    body: msgspec.Raw = msgspec.Raw()


_LEGACY_PROBE = msgspec.json.Decoder(_LegacyProbe)


@dataclass(frozen=True, slots=True)
class Legacy:
    """A legacy gateway message: the handler answers it with its fixed refusal."""


def rejection(request_id: str, code: ErrorCode, message: str, *, method: str = "") -> GatewayReply:
    text = wire_message(code, message, method=method)
    return GatewayReply(
        body=envelope.encode_gateway_error(request_id, code.rpc_code, text), code=code
    )


def _parse_error(request_id: str, message: str) -> GatewayReply:
    return rejection(request_id, ErrorCode.UserMessageParseError, message)


def _is_legacy(body: bytes) -> bool:
    try:
        probe = _LEGACY_PROBE.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return False
    return len(probe.body) > 0


def parse_user_request(body: bytes) -> UserRequest | Legacy | GatewayReply:
    """A request to forward (bytes unchanged), a legacy message, or the error reply to send."""
    try:
        # Go's json.Unmarshal into the framework's request: keys match case-insensitively,
        # `"id":null` is an empty id, and the errors are encoding/json's own texts.
        env = rpc.decode_request(body)
    except GoSyntaxError as exc:
        return _parse_error("", f"invalid JSON: {exc.message}")
    except GoJSONError as exc:
        return _parse_error("", f"not a JSON-RPC request: {exc.message}")
    if env.jsonrpc == "" and _is_legacy(body):
        return Legacy()
    if env.jsonrpc != "2.0":
        return _parse_error(env.id, 'invalid jsonrpc version: must be "2.0"')
    if env.method == "":
        return _parse_error(env.id, "method is required")
    if env.params is None:
        return _parse_error(env.id, "params are required")
    size = len(env.id.encode("utf-8", "surrogatepass"))
    if size > MAX_REQUEST_ID_BYTES:
        return _parse_error(
            env.id, f"request ID is too long: {size}. max is {MAX_REQUEST_ID_BYTES} characters"
        )
    service = env.method.split(".", 1)[0]
    if service != SERVICE_NAME:
        return rejection(
            env.id,
            ErrorCode.UnsupportedMethodError,
            f"no handler for service {service!r}",
            method=env.method,
        )
    return UserRequest(id=env.id, method=env.method, raw=body)
