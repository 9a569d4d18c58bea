"""The attestation binding: what the enclave's Nitro `user_data` must equal (PROTOCOL 3.1, 3.2).

The relay decodes the params exactly as Go does, saves `attestation` and clears it (the field
is `omitempty`, so it disappears), re-marshals with Go's encoder, and hashes the bytes with the
method's domain tag. The enclave did the same on its side with Go, so any byte of difference
fails the attestation; `schemas.gojson` is what makes the bytes Go's.

Also re-exported here: Go's `base64.StdEncoding` decoding (`schemas.gobase64`), for the
attestation and payload fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import msgspec

from schemas import current, rpc
from schemas.gobase64 import GoBase64Error, go_base64_decode, go_base64_error

DomainHashVersion = Literal["v1", "v2"]

__all__ = [
    "Bound",
    "DomainHashVersion",
    "GoBase64Error",
    "UnknownMethodError",
    "bind",
    "bind_current",
    "domain_hash",
    "domain_tag",
    "go_base64_decode",
    "go_base64_error",
]


def domain_hash(tag: str, data: bytes, version: DomainHashVersion = "v1") -> bytes:
    """teeattestation `DomainHash`: SHA-256 over the separator, the tag and the data.

    v1 (every PR-era relay): separator, `\\n`, tag, `\\n`, data.
    v2 (chainlink-common fde1bc6ad): separator, then each of tag and data prefixed by its
    8-byte big-endian length, no newlines.
    """
    h = hashlib.sha256(rpc.DomainSeparator.encode())
    tag_bytes = tag.encode()
    if version == "v1":
        h.update(b"\n" + tag_bytes + b"\n")
    elif version == "v2":
        h.update(len(tag_bytes).to_bytes(8, "big") + tag_bytes)
        h.update(len(data).to_bytes(8, "big"))
    else:
        raise ValueError(f"unknown DomainHash version {version!r}")
    h.update(data)
    return h.digest()


class UnknownMethodError(ValueError):
    """No binding for this method; `message` is the relay's -32601 wire text."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.message = f"unsupported method: {method}"
        super().__init__(self.message)


def domain_tag(method: str) -> str:
    """The attestation domain tag of a method, or UnknownMethodError."""
    tag = rpc.DOMAIN_TAGS.get(method)
    if tag is None:
        raise UnknownMethodError(method)
    return tag


@dataclass(frozen=True, slots=True)
class Bound:
    """Params as the relay decoded them, and what the enclave's attestation must commit to."""

    method: str
    params: (
        rpc.SecretsRequestParams
        | rpc.CapabilityRequestParams
        | current.SecretsRequestParams
        | current.CapabilityRequestParams
    )
    attestation: str
    params_json: bytes
    """Go's re-marshal of the params with the attestation cleared: what was hashed."""
    user_data: bytes
    """`DomainHash(tag, params_json)`: the Nitro document's user_data must equal this."""


def bind(method: str, params: bytes, version: DomainHashVersion = "v1") -> Bound:
    """Decode `params` (raw JSON) for `method` as the Go relay does and compute the binding.

    Raises `UnknownMethodError`, or `schemas.gojson.GoJSONError` whose `message` is Go's
    `json.Unmarshal` error text (the -32602 wire message).
    """
    tag = domain_tag(method)
    decoded: rpc.SecretsRequestParams | rpc.CapabilityRequestParams
    if method == rpc.MethodSecretsGet:
        decoded = rpc.decode_secrets_params(params)
        params_json = rpc.encode_secrets_params(msgspec.structs.replace(decoded, attestation=""))
    else:
        decoded = rpc.decode_capability_params(params)
        params_json = rpc.encode_capability_params(msgspec.structs.replace(decoded, attestation=""))
    return Bound(
        method=method,
        params=decoded,
        attestation=decoded.attestation,
        params_json=params_json,
        user_data=domain_hash(tag, params_json, version),
    )


def bind_current(method: str, params: bytes, version: DomainHashVersion = "v2") -> Bound:
    """`bind` for the current protocol (PROTOCOL 10.9): the params decoded with the field set of
    chainlink-common `main` (`schemas.current`: `enclave_config` and `signed_compute_requests`
    are attested, only `attestation` is cleared), DomainHash v2 by default as current enclaves
    use. Raises like `bind`.
    """
    tag = domain_tag(method)
    decoded: current.SecretsRequestParams | current.CapabilityRequestParams
    if method == rpc.MethodSecretsGet:
        decoded = current.decode_secrets_params(params)
        params_json = current.encode_secrets_params(
            msgspec.structs.replace(decoded, attestation="")
        )
    else:
        decoded = current.decode_capability_params(params)
        params_json = current.encode_capability_params(
            msgspec.structs.replace(decoded, attestation="")
        )
    return Bound(
        method=method,
        params=decoded,
        attestation=decoded.attestation,
        params_json=params_json,
        user_data=domain_hash(tag, params_json, version),
    )
