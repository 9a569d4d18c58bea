"""Reading the relay's answer under `n1`: the gateway's F+1 answer (PROTOCOL 1.2, 2.6).

Under `n1` the gateway decides: the enclave gets the one JSON-RPC response that F+1 nodes sent
byte-identically. Here it is checked for shape and id, its error raised as `RelayError`, and its
result rebuilt in request order the way upstream's enclave does (PROTOCOL 10.6 step 8: an entry
not requested or given twice fails the answer, a requested secret without an entry is that
secret's error). The `current` protocol's bundle is read by `workers.enclave.bundle`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import msgspec

from schemas import rpc
from workers.enclave.errors import AnswerError, RelayError

MISSING_SECRET = "secret missing from relay response"


@dataclass(frozen=True, slots=True)
class SecretAnswer:
    """One requested secret: its sealed value, or the per-secret error."""

    namespace: str
    key: str
    ciphertext: str = ""
    encrypted_shares: tuple[str, ...] = ()
    error: str = ""


class _Envelope(msgspec.Struct, frozen=True):
    result: msgspec.Raw = msgspec.Raw()


def result_of(body: bytes, *, request_id: str) -> Any:
    """The decoded `result` of a JSON-RPC response to `request_id`; RelayError for an error."""
    return json.loads(result_bytes(body, request_id=request_id))


def result_bytes(body: bytes, *, request_id: str) -> bytes:
    """The raw JSON of the `result` of a response to `request_id`; RelayError for an error."""
    try:
        envelope = json.loads(body)
        raw = msgspec.json.decode(body, type=_Envelope).result
    except (ValueError, msgspec.DecodeError) as exc:
        raise AnswerError(f"answer is not JSON: {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("jsonrpc") != rpc.JsonRpcVersion:
        raise AnswerError("answer is not a JSON-RPC 2.0 response")
    error = envelope.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise AnswerError("answer's error is not an object")
        code, message = error.get("code"), error.get("message")
        # The gateway answers some errors before it knows the id (an empty or too long id).
        if envelope.get("id") not in (request_id, ""):
            raise AnswerError(f"error answer is for id {envelope.get('id')!r}, not {request_id!r}")
        raise RelayError(code if isinstance(code, int) else 0, str(message))
    if envelope.get("id") != request_id:
        raise AnswerError(f"answer is for id {envelope.get('id')!r}, not {request_id!r}")
    if "result" not in envelope or envelope["result"] is None:
        raise AnswerError("answer has neither result nor error")
    return bytes(raw)


def secrets_in_request_order(
    result: Any, requested: tuple[rpc.SecretIdentifier, ...]
) -> list[SecretAnswer]:
    """The secrets result rebuilt in request order (PROTOCOL 10.6 step 8)."""
    if not isinstance(result, dict):
        raise AnswerError("secrets result is not an object")
    entries = result.get("secrets") or []
    if not isinstance(entries, list):
        raise AnswerError("secrets result's `secrets` is not a list")
    wanted = list(dict.fromkeys((s.namespace, s.key) for s in requested))
    found: dict[tuple[str, str], SecretAnswer] = {}
    for entry in entries:
        ident = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(ident, dict):
            raise AnswerError("secret entry without an id")
        where = (str(ident.get("namespace", "")), str(ident.get("key", "")))
        if where not in wanted:
            raise AnswerError(f"unexpected secret {where[0]}/{where[1]} not in request")
        if where in found:
            raise AnswerError(f"duplicate secret {where[0]}/{where[1]} in response")
        shares = entry.get("encrypted_shares") or []
        ciphertext = entry.get("ciphertext", "")
        if not isinstance(ciphertext, str) or not all(isinstance(s, str) for s in shares):
            raise AnswerError(f"secret {where[0]}/{where[1]} is not strings")
        found[where] = SecretAnswer(
            namespace=where[0], key=where[1], ciphertext=ciphertext, encrypted_shares=tuple(shares)
        )
    return [
        found.get(w) or SecretAnswer(namespace=w[0], key=w[1], error=MISSING_SECRET) for w in wanted
    ]


@dataclass(frozen=True, slots=True)
class CapabilityAnswer:
    """The capability's answer: `response` is the serialised sdk CapabilityResponse (may be
    empty), or `error` the capability's own error text."""

    response: bytes = b""
    error: str = ""


def capability_answer(result: Any) -> CapabilityAnswer:
    if not isinstance(result, dict):
        raise AnswerError("capability result is not an object")
    error, payload = result.get("error", ""), result.get("payload", "")
    if not isinstance(error, str) or not isinstance(payload, str):
        raise AnswerError("capability result fields are not strings")
    if error:
        return CapabilityAnswer(error=error)
    try:
        return CapabilityAnswer(response=base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise AnswerError(f"capability payload is not base64: {exc}") from exc
