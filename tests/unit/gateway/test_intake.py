"""What the gateway checks on a user request before the handler (PROTOCOL 1.2 step 2, 2.6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.handler import UserRequest
from workers.gateway.intake import Legacy, parse_user_request


def error_of(result: object) -> tuple[GatewayReply, dict[str, Any]]:
    assert isinstance(result, GatewayReply)
    decoded: dict[str, Any] = json.loads(result.body)
    return result, decoded


def test_a_valid_request_is_forwarded_byte_for_byte() -> None:
    """Whitespace and unknown keys survive: nodes hash what the enclave sent."""
    body = b'{ "jsonrpc": "2.0", "id": "r1", "method": "confidential.secrets.get", "params": {"a": 1}, "x": 2 }'
    parsed = parse_user_request(body)
    assert parsed == UserRequest(id="r1", method="confidential.secrets.get", raw=body)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "user message parse error: invalid JSON"),
        (b"", "user message parse error: invalid JSON"),
        (b'{"jsonrpc":"2.0"} {}', "user message parse error: invalid JSON"),
        (
            b"[1,2]",
            "user message parse error: not a JSON-RPC request: json: cannot unmarshal array",
        ),
        (
            b'{"jsonrpc":"2.0","id":7,"method":"confidential.x","params":{}}',
            "json: cannot unmarshal number into Go struct field",
        ),
        (b'{"jsonrpc":"1.0","id":"a","method":"confidential.x","params":{}}', "jsonrpc version"),
        (b'{"id":"a","method":"confidential.x","params":{}}', "jsonrpc version"),
        (b'{"jsonrpc":"2.0","id":"a","params":{}}', "method is required"),
        (b'{"jsonrpc":"2.0","id":"a","method":"confidential.x"}', "params are required"),
        (
            b'{"jsonrpc":"2.0","id":"a","method":"confidential.x","params":null}',
            "params are required",
        ),
    ],
)
def test_a_body_that_is_not_a_json_rpc_request_is_a_parse_error(body: bytes, fragment: str) -> None:
    """Each malformed body gets -32700 with HTTP 400 and a reason naming the problem."""
    reply, decoded = error_of(parse_user_request(body))
    assert reply.code is ErrorCode.UserMessageParseError
    assert reply.status == 400
    assert decoded["error"]["code"] == -32700
    assert decoded["error"]["data"] is None
    assert fragment in decoded["error"]["message"]


def test_an_overlong_id_is_refused_as_a_parse_error_by_the_framework() -> None:
    """The framework checks the id length first: -32700 with the prefixed message."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": "x" * 201, "method": "confidential.secrets.get", "params": {}}
    ).encode()
    reply, decoded = error_of(parse_user_request(body))
    assert decoded["error"]["message"] == (
        "user message parse error: request ID is too long: 201. max is 200 characters"
    )
    assert reply.status == 400


def test_an_id_of_exactly_200_bytes_is_accepted() -> None:
    """200 bytes is the limit, inclusive."""
    body = json.dumps(
        {"jsonrpc": "2.0", "id": "x" * 200, "method": "confidential.secrets.get", "params": {}}
    ).encode()
    assert isinstance(parse_user_request(body), UserRequest)


def test_a_method_of_another_service_is_unsupported() -> None:
    """Routing is by the service name before the first dot: -32601 with upstream's prefix."""
    body = b'{"jsonrpc":"2.0","id":"a","method":"workflows.execute","params":{}}'
    reply, decoded = error_of(parse_user_request(body))
    assert reply.code is ErrorCode.UnsupportedMethodError
    assert decoded["error"]["code"] == -32601
    assert decoded["error"]["message"].startswith("unsupported method(workflows.execute): ")
    assert decoded["id"] == "a"


def test_an_unknown_confidential_method_is_still_forwarded() -> None:
    """The nodes, not the gateway, answer an unknown method of the confidential service."""
    body = b'{"jsonrpc":"2.0","id":"a","method":"confidential.unknown","params":{}}'
    assert isinstance(parse_user_request(body), UserRequest)


def test_a_legacy_gateway_message_is_recognised() -> None:
    """A {"body": ..., "signature": ...} message without jsonrpc is the legacy format."""
    assert parse_user_request(b'{"body":{"message_id":"1"},"signature":"00"}') == Legacy()


def test_params_nested_as_deep_as_go_allows_are_forwarded() -> None:
    """Two thousand levels of nesting: Go's decoder takes them (up to 10,000), so do we."""
    body = b'{"jsonrpc":"2.0","id":"a","method":"confidential.x","params":%s}' % (
        b"[" * 2000 + b"]" * 2000
    )
    assert parse_user_request(body) == UserRequest(id="a", method="confidential.x", raw=body)


def test_params_nested_past_gos_limit_are_a_parse_error_with_gos_text() -> None:
    """10,001 levels: encoding/json's `exceeded max depth`, as -32700."""
    body = b'{"jsonrpc":"2.0","id":"a","method":"confidential.x","params":%s}' % (
        b"[" * 10_001 + b"]" * 10_001
    )
    reply, decoded = error_of(parse_user_request(body))
    assert reply.code is ErrorCode.UserMessageParseError
    assert decoded["error"]["message"].endswith("exceeded max depth")


def test_keys_match_case_insensitively_and_a_null_id_is_empty_as_in_go() -> None:
    """`ID`/`Method`/`Params` are Go's fields too; `"id":null` leaves the id empty, which the
    handler then refuses as empty (-32600), not as unparsable."""
    body = b'{"JSONRPC":"2.0","ID":"abc","Method":"confidential.x","Params":{}}'
    assert parse_user_request(body) == UserRequest(id="abc", method="confidential.x", raw=body)
    null_id = b'{"jsonrpc":"2.0","id":null,"method":"confidential.x","params":{}}'
    assert parse_user_request(null_id) == UserRequest(id="", method="confidential.x", raw=null_id)
