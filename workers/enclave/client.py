"""`EnclaveClient`: what an enclave program calls (docs/enclave-client.md).

Sans-IO at its core: `secrets_call` / `capability_call` give a request body to send however the
enclave reaches the gateway, `open_secrets` / `open_capability` read the answer body. `get_secrets`
and `execute` do both over a synchronous transport (`HttpTransport`); with the asynchronous
`NatsTransport`, await `transport.send(call.body)` between the two halves.

Each secrets call uses a fresh X25519 key pair: its private half never leaves the call object,
and its public half is what the vault seals the shares to.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from schemas import current, rpc
from workers.enclave import answers, bundle, pb, requests, shares
from workers.enclave.attest import AttestationSource
from workers.enclave.errors import AnswerError
from workers.protocol.binding import DomainHashVersion


class SyncTransport(Protocol):
    def send(self, body: bytes) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Secret:
    """One requested secret, opened: `value`, or `error` (the vault's or the relay's)."""

    namespace: str
    key: str
    value: bytes | None = None
    error: str = ""


@dataclass(frozen=True)
class SecretsCall:
    prepared: requests.Prepared
    key: X25519PrivateKey = field(repr=False)

    @property
    def body(self) -> bytes:
        return self.prepared.body


@dataclass(frozen=True)
class CapabilityCall:
    prepared: requests.Prepared

    @property
    def body(self) -> bytes:
        return self.prepared.body


class EnclaveClient:
    """One workflow execution's client: who it is, how it attests, how it binds."""

    def __init__(
        self,
        *,
        source: AttestationSource,
        workflow_id: str,
        owner: str,
        execution_id: str,
        org_id: str = "",
        enclave_config: current.EnclaveConfig | None = None,
        domain_hash: DomainHashVersion | None = None,
    ) -> None:
        """Without `enclave_config`: protocol `n1` (the gateway's F+1 answer, DomainHash v1 by
        default). With it: protocol `current` (a bundle of signed answers, checked against its
        signers and F; DomainHash v2 by default, as current enclaves attest)."""
        self._source = source
        self._workflow_id = workflow_id
        self._owner = owner
        self._execution_id = execution_id
        self._org_id = org_id
        self._config = enclave_config
        self._domain_hash: DomainHashVersion = domain_hash or (
            "v1" if enclave_config is None else "v2"
        )
        self._ids = itertools.count(1)
        self._id_prefix = os.urandom(6).hex()

    def _next_id(self) -> str:
        # Unique per call: the gateway refuses an id already in flight, and the reference vault
        # binds the shares to it.
        return f"enclave-{self._id_prefix}-{next(self._ids)}"

    def secrets_call(
        self,
        secrets: list[tuple[str, str]],
        *,
        request_id: str | None = None,
        signed_compute_requests: tuple[current.SignedComputeRequest, ...] = (),
    ) -> SecretsCall:
        """A `confidential.secrets.get` for (namespace, key) pairs, with a fresh key pair;
        under current, with the Workflow DON's `signed_compute_requests` (10.8)."""
        key = X25519PrivateKey.generate()
        params = requests.secrets_params(
            workflow_id=self._workflow_id,
            owner_address=self._owner,
            execution_id=self._execution_id,
            org_id=self._org_id,
            secrets=secrets,
            enclave_public_key=shares.public_hex(key),
            enclave_config=self._config,
            signed_compute_requests=signed_compute_requests or None,
        )
        prepared = requests.prepare(
            params,
            request_id=request_id or self._next_id(),
            source=self._source,
            version=self._domain_hash,
        )
        return SecretsCall(prepared=prepared, key=key)

    def capability_call(
        self,
        capability_id: str,
        method: str,
        *,
        type_url: str = "",
        value: bytes = b"",
        reference_id: str = "",
        request_id: str | None = None,
    ) -> CapabilityCall:
        """A `confidential.capability.execute` of `capability_id`'s `method` with an Any input.

        `reference_id` identifies the call within the execution (upstream: the sdk callback id);
        a retry with the same one gets the first answer, never a second execution."""
        rid = request_id or self._next_id()
        params = requests.capability_params(
            workflow_id=self._workflow_id,
            owner_address=self._owner,
            execution_id=self._execution_id,
            org_id=self._org_id,
            reference_id=reference_id or rid,
            capability_id=capability_id,
            payload=pb.capability_request(method, type_url=type_url, value=value),
            enclave_config=self._config,
        )
        prepared = requests.prepare(
            params, request_id=rid, source=self._source, version=self._domain_hash
        )
        return CapabilityCall(prepared=prepared)

    # --- answers ---------------------------------------------------------------------------

    def _result(self, prepared: requests.Prepared, body: bytes) -> object:
        """n1: the gateway's answer as JSON; current: the result the bundle's signers chose."""
        raw = answers.result_bytes(body, request_id=prepared.id)
        params = prepared.params
        if not isinstance(params, current.SecretsRequestParams | current.CapabilityRequestParams):
            return json.loads(raw)
        chosen = bundle.select(prepared.method, params, bundle.decode_bundle(prepared.method, raw))
        if isinstance(chosen.result, rpc.SecretsResponseResult):
            return json.loads(rpc.encode_secrets_result(chosen.result))
        return json.loads(rpc.encode_capability_result(chosen.result))

    def open_secrets(self, call: SecretsCall, body: bytes) -> list[Secret]:
        """The answer's secrets in request order, each opened with the call's private key.

        Under `current` the answer is first picked from the bundle (10.6): NoQuorum when no
        result has F+1 valid distinct signers."""
        result = self._result(call.prepared, body)
        params = call.prepared.params
        if not isinstance(params, rpc.SecretsRequestParams | current.SecretsRequestParams):
            raise TypeError("open_secrets takes the SecretsCall of a secrets request")
        return [
            self._open(call, entry)
            for entry in answers.secrets_in_request_order(result, params.secrets or ())
        ]

    def _open(self, call: SecretsCall, entry: answers.SecretAnswer) -> Secret:
        if entry.error:
            return Secret(namespace=entry.namespace, key=entry.key, error=entry.error)
        try:
            ciphertext = base64.b64decode(entry.ciphertext, validate=True)
            sealed = [base64.b64decode(s, validate=True) for s in entry.encrypted_shares]
        except (binascii.Error, ValueError) as exc:
            raise AnswerError(f"secret {entry.namespace}/{entry.key} is not base64") from exc
        value = shares.decrypt_secret(
            ciphertext,
            sealed,
            call.key,
            name=f"{entry.namespace}/{entry.key}".encode(),
            reference=call.prepared.id.encode(),
        )
        return Secret(namespace=entry.namespace, key=entry.key, value=value)

    def open_capability(self, call: CapabilityCall, body: bytes) -> pb.CapabilityResponse:
        """The capability's answer: its Any, or its own error (a successful call either way)."""
        answer = answers.capability_answer(self._result(call.prepared, body))
        if answer.error:
            return pb.CapabilityResponse(error=answer.error)
        try:
            return pb.capability_response(answer.response)
        except pb.ProtobufError as exc:
            raise AnswerError(f"capability payload is not a CapabilityResponse: {exc}") from exc

    # --- one call, synchronous ----------------------------------------------------------------

    def get_secrets(
        self,
        transport: SyncTransport,
        secrets: list[tuple[str, str]],
        *,
        signed_compute_requests: tuple[current.SignedComputeRequest, ...] = (),
    ) -> list[Secret]:
        call = self.secrets_call(secrets, signed_compute_requests=signed_compute_requests)
        return self.open_secrets(call, transport.send(call.body))

    def execute(
        self,
        transport: SyncTransport,
        capability_id: str,
        method: str,
        *,
        type_url: str = "",
        value: bytes = b"",
        reference_id: str = "",
    ) -> pb.CapabilityResponse:
        call = self.capability_call(
            capability_id, method, type_url=type_url, value=value, reference_id=reference_id
        )
        return self.open_capability(call, transport.send(call.body))
