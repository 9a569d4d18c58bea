"""G3 bundling (PROTOCOL 10.10): each node response classified, the signed ones bundled.

- An `error`, or no `result`, is an error; its log sample is kept (trimmed; over 200 bytes cut
  to 199 plus `..`; empty: `jsonrpc error code <n>`; no result and no error: `nil result`).
- Otherwise the result is decoded as the method's signed type, as Go's `json.Unmarshal` does
  (`schemas.current`): failure is "undecodable", success is "signed". No signature is checked
  here (the enclave does, 10.6), so any object that decodes counts.
- Forwarding re-marshals the kept entries into `{"responses":[...]}`, which normalises them
  (Go key order, canonical base64, an empty `signatures` dropped, a missing `signature` written
  as `{"signer":null,"signature":null}`), inside the request's envelope. Upstream iterates a Go
  map (random order); here the entries follow the members' address order, so a bundle is
  reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from schemas import current, rpc
from schemas.gojson_errors import GoJSONError
from workers.gateway.envelope import NodeResponse

SAMPLE_MAX_BYTES = 200

Kind = Literal["signed", "error", "undecodable"]
Signed = current.SignedSecretsResponseResult | current.SignedCapabilityResponseResult


class UnknownRelayMethod(ValueError):
    def __init__(self, method: str) -> None:
        # Go's %q of the method; the relay's methods are plain ASCII, anything else never gets here
        super().__init__(f'unknown relay method: "{method}"')


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    signed: Signed | None = None
    sample: str = ""


def _sample(message: str, code: int) -> str:
    text = message.strip()
    if not text:
        return f"jsonrpc error code {code}"
    raw = text.encode()
    if len(raw) > SAMPLE_MAX_BYTES:
        return raw[: SAMPLE_MAX_BYTES - 1].decode(errors="ignore") + ".."
    return text


def _decode(method: str, raw: bytes) -> Signed:
    if method == rpc.MethodSecretsGet:
        return current.decode_signed_secrets_result(raw)
    if method == rpc.MethodCapabilityExec:
        return current.decode_signed_capability_result(raw)
    raise UnknownRelayMethod(method)


def classify(resp: NodeResponse, method: str) -> Entry:
    if resp.error is not None:
        return Entry(kind="error", sample=_sample(resp.error.message, resp.error.code))
    raw = bytes(resp.result)
    if not raw or raw == b"null":
        return Entry(kind="error", sample="nil result")
    try:
        return Entry(kind="signed", signed=_decode(method, raw))
    except GoJSONError as exc:
        return Entry(kind="undecodable", sample=str(exc)[:SAMPLE_MAX_BYTES])
    except UnknownRelayMethod as exc:
        # Upstream fails such a request when it bundles (FatalError `unknown relay method`):
        # the answer counts, and forwarding then fails with that text (`forward_body`).
        return Entry(kind="signed", sample=str(exc))


def bundle_result(method: str, signed: list[Signed]) -> bytes:
    """`{"responses":[...]}` of the method's bundle type, as Go marshals it."""
    if method == rpc.MethodSecretsGet:
        secrets = [s for s in signed if isinstance(s, current.SignedSecretsResponseResult)]
        return current.encode_secrets_bundle(
            current.SignedSecretsResponseBundle(responses=tuple(secrets))
        )
    if method == rpc.MethodCapabilityExec:
        caps = [s for s in signed if isinstance(s, current.SignedCapabilityResponseResult)]
        return current.encode_capability_bundle(
            current.SignedCapabilityResponseBundle(responses=tuple(caps))
        )
    raise UnknownRelayMethod(method)


def forward_body(request_id: str, method: str, signed: list[Signed]) -> bytes:
    """The enclave's answer: the request's envelope with the bundle as its result."""
    return rpc.encode_envelope(
        rpc.Response(
            jsonrpc=rpc.JsonRpcVersion,
            id=request_id,
            method=method,
            result=bundle_result(method, signed),
        )
    )
