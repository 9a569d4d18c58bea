"""The HTTP load of `relay bench don`: how a wrong answer is named."""

from __future__ import annotations

import json

from workers.bench.httpload import error_kind


def test_an_expired_request_is_counted_under_one_kind_whatever_its_counts() -> None:
    """'request expired: got 1/2 responses' and 'got 0/2' are the same kind of error."""
    bodies = [
        {
            "jsonrpc": "2.0",
            "id": "a",
            "error": {"code": -32000, "message": f"request expired: got {n}/2 responses"},
        }
        for n in (0, 1)
    ]
    kinds = {error_kind(504, json.dumps(b).encode()) for b in bodies}
    assert kinds == {"HTTP 504: request expired"}


def test_a_body_that_is_not_a_json_rpc_error_still_has_a_kind() -> None:
    """A proxy's HTML page or an empty body is 'unexpected body' with its status."""
    assert error_kind(502, b"<html>bad gateway</html>") == "HTTP 502: unexpected body"
    assert error_kind(200, b"") == "HTTP 200: unexpected body"
