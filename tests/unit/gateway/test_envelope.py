"""Re-encoding the chosen node envelope and gateway errors exactly as Go's json.Marshal does."""

from __future__ import annotations

from workers.gateway.envelope import (
    decode_node_response,
    encode_gateway_error,
    encode_node_response,
)


def test_raw_values_are_compacted_with_their_text_kept_and_html_escaped() -> None:
    """Whitespace goes; number spellings and existing escapes stay; <>& are escaped."""
    resp = decode_node_response(
        b'{"id":"i","result":{ "n" : [1.0, 1e2, -0] , "s" : "a\\u0041 <b> & \\/" }}'
    )
    assert encode_node_response(resp) == (
        b'{"jsonrpc":"","id":"i","method":"","result":'
        b'{"n":[1.0,1e2,-0],"s":"a\\u0041 \\u003cb\\u003e \\u0026 \\/"}}'
    )


def test_a_success_envelope_is_re_encoded_in_go_field_order() -> None:
    """Keys come out jsonrpc, id, method, result whatever order the node used."""
    resp = decode_node_response(
        b'{"result": {"z":1, "a":"<"}, "method":"m", "id":"i", "jsonrpc":"2.0"}'
    )
    assert encode_node_response(resp) == (
        b'{"jsonrpc":"2.0","id":"i","method":"m","result":{"z":1,"a":"\\u003c"}}'
    )


def test_an_error_envelope_keeps_data_only_when_present() -> None:
    """`data` is written when a node sent it and omitted when absent or null."""
    with_data = decode_node_response(
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32602,"message":"bad","data":[1]}}'
    )
    assert encode_node_response(with_data) == (
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32602,"message":"bad","data":[1]}}'
    )
    null_data = decode_node_response(
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32603,"message":"x","data":null}}'
    )
    assert encode_node_response(null_data) == (
        b'{"jsonrpc":"2.0","id":"i","method":"m","error":{"code":-32603,"message":"x"}}'
    )


def test_the_method_key_is_always_present_even_when_empty() -> None:
    """Go writes `"method":""` for a response without a method."""
    assert encode_node_response(decode_node_response(b'{"id":"i"}')) == (
        b'{"jsonrpc":"","id":"i","method":""}'
    )


def test_gateway_errors_have_an_empty_method_and_null_data() -> None:
    """EncodeNewErrorResponse: `method` empty, `data` null, the id echoed Go-escaped."""
    assert encode_gateway_error("a<b", -32600, "request ID cannot be empty") == (
        b'{"jsonrpc":"2.0","id":"a\\u003cb","method":"","error":'
        b'{"code":-32600,"message":"request ID cannot be empty","data":null}}'
    )
