"""The gateway's error codes and how each reaches the enclave (PROTOCOL 2.6).

Upstream's gateway has one ErrorCode enum; each code maps to a JSON-RPC code and an HTTP status,
and a few codes prefix the message. Keeping the three facts in one table keeps the HTTP front,
the NATS front and the metrics in agreement.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ErrorCode(enum.Enum):
    """Upstream's gateway ErrorCode names, with their JSON-RPC code and HTTP status."""

    NoError = ("NoError", 0, 200)
    UserMessageParseError = ("UserMessageParseError", -32700, 400)
    UnsupportedDONIdError = ("UnsupportedDONIdError", -32602, 400)
    InvalidParamsError = ("InvalidParamsError", -32602, 400)
    HandlerError = ("HandlerError", -32600, 400)
    RequestTimeoutError = ("RequestTimeoutError", -32000, 504)
    NodeReponseEncodingError = ("NodeReponseEncodingError", -32603, 500)  # sic, upstream's name
    FatalError = ("FatalError", -32603, 500)
    UnsupportedMethodError = ("UnsupportedMethodError", -32601, 400)
    StaleNodeResponseError = ("StaleNodeResponseError", -32603, 500)
    ConflictError = ("ConflictError", -32003, 409)
    LimitExceededError = ("LimitExceededError", -32002, 429)

    def __init__(self, label: str, rpc_code: int, http_status: int) -> None:
        self.label = label
        self.rpc_code = rpc_code
        self.http_status = http_status


def wire_message(code: ErrorCode, message: str, *, method: str = "") -> str:
    """The message as upstream's constructErrorResponse puts it on the wire (its prefixes)."""
    if code is ErrorCode.InvalidParamsError:
        return f"invalid params error: {message}"
    if code is ErrorCode.UnsupportedMethodError:
        return f"unsupported method({method}): {message}"
    if code is ErrorCode.UserMessageParseError:
        return f"user message parse error: {message}"
    return message


@dataclass(frozen=True, slots=True)
class GatewayReply:
    """What the enclave gets: the JSON-RPC body, its HTTP status and the gateway code behind it."""

    body: bytes
    code: ErrorCode

    @property
    def status(self) -> int:
        return self.code.http_status
