"""Dispatch of `confidential.secrets.get` to the Vault DON (PROTOCOL 4.1, N1 + #21991).

`handle` is pure given its Registry and Capabilities; the translation of the vault's answer is
deterministic (vault order, hex to base64, the first share entry for the enclave key), so every
honest node produces the same bytes. The relay decrypts nothing: the vault already encrypted each
key share to the enclave's key.
"""

from __future__ import annotations

import base64
import logging

import msgspec
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from nats.aio.client import Client

from schemas import bus, capability, rpc, subjects
from schemas.gohex import go_hex_decode
from schemas.proto.gen import vault_pb2
from workers.dispatch.common import (
    Capabilities,
    CapabilityUnreachable,
    NatsCapabilities,
    Registry,
    deadline_for,
    expired_reply,
    internal,
    invalid_params,
)
from workers.protocol import owner as owners
from workers.registry.client import add_readiness, open_registry
from workers.runtime.bus import Headers, Service, accepted_at
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.dispatch.secrets")

VAULT_REQUEST_TYPE = "vault.GetSecretsRequest"
VAULT_RESPONSE_TYPE = "vault.GetSecretsResponse"
_LOCAL_NODE_FAILED = "failed to get local node: "
PROTOCOL_CURRENT = "current"

MAX_SECRETS_PER_REQUEST = 64
"""The most secrets one `confidential.secrets.get` may ask for. More is refused before the vault
is called, at the place (and with the code) where Go meets a vault that refuses the batch:
PROTOCOL 2.5 row 8, -32603 `internal error`, so Python and Go nodes still answer alike. Without
a bound one request can ask for a secret thousands of times and make the vault's answer exceed
the server's max_payload (the reference vault refuses the same count)."""


def build_vault_request(
    params: rpc.SecretsRequestParams, normalized_owner: str
) -> vault_pb2.GetSecretsRequest:
    """One SecretRequest per params secret, in request order: no dedupe, no sorting."""
    request = vault_pb2.GetSecretsRequest(
        workflow_owner=normalized_owner,
        org_id=params.org_id,
    )
    for secret in params.secrets or ():
        entry = request.requests.add()
        entry.id.key = secret.key
        entry.id.namespace = secret.namespace or rpc.VaultDefaultNamespace
        entry.id.owner = normalized_owner
        entry.encryption_keys.append(params.enclave_public_key)
    return request


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


VAULT_SYSTEM_ERROR = "failed to handle get secret request"
"""The vault's fallback text for its own failures (`vault_error.go`): a system error, -32603."""


def vault_error(where: str, message: str, *, user_errors: bool) -> bus.StageError:
    """A per-secret vault error. N1: always -32603. Current (PROTOCOL 10.11): a user error
    (-32602, the full text reaches the enclave, which then does not page) unless it is the
    vault's system-error fallback."""
    text = f"vault error for secret {where}: {message}"
    if user_errors and message != VAULT_SYSTEM_ERROR:
        return invalid_params(text)
    return internal(text)


def translate_vault_response(
    response: vault_pb2.GetSecretsResponse, enclave_public_key: str, *, user_errors: bool = False
) -> rpc.SecretsResponseResult | bus.StageError:
    """The vault's answer as the enclave's result, or the first failing secret's error."""
    entries: list[rpc.SecretEntry] = []
    for secret in response.responses:
        where = f"{secret.id.namespace}/{secret.id.key}"
        kind = secret.WhichOneof("result")
        if kind == "error" and secret.error:
            return vault_error(where, secret.error, user_errors=user_errors)
        if kind != "data":
            return internal(f"vault returned no data for secret {where}")
        data = secret.data
        try:
            ciphertext = go_hex_decode(data.encrypted_value)
        except ValueError as exc:
            return internal(f"failed to decode encrypted value for {secret.id.key}: {exc}")
        shares: list[str] | None = None
        for group in data.encrypted_decryption_key_shares:
            if group.encryption_key != enclave_public_key:
                continue
            if group.binary_shares:
                shares = [_b64(share) for share in group.binary_shares]
            else:
                try:
                    shares = [_b64(go_hex_decode(share)) for share in group.shares]
                except ValueError as exc:
                    return internal(f"failed to decode share: {exc}")
            break  # the first entry for this key wins; later ones are ignored
        if not shares:
            return internal(f"no shares found for enclave key in secret {where}")
        entries.append(
            rpc.SecretEntry(
                id=rpc.SecretIdentifier(key=secret.id.key, namespace=secret.id.namespace),
                ciphertext=_b64(ciphertext),
                encrypted_shares=tuple(shares),
            )
        )
    # A vault that returned no responses gives Go's nil slice: "secrets":null.
    return rpc.SecretsResponseResult(secrets=tuple(entries) if entries else None)


async def handle(
    req: bus.DispatchRequest, registry: Registry, caps: Capabilities, deadline: float
) -> bus.DispatchReply:
    params = rpc.decode_secrets_params(bytes(req.params))
    found = await registry.capability(rpc.VaultCapabilityID, deadline)
    if isinstance(found, bus.StageError):
        return internal(f"failed to get vault capability: {found.detail}")
    try:
        normalized = owners.normalize_owner(params.owner)
    except owners.InvalidOwnerError as exc:
        return invalid_params(str(exc))
    vault_request = build_vault_request(params, normalized)
    wrapped = any_pb2.Any()
    wrapped.Pack(vault_request)
    local = await registry.local_node(deadline)
    if not isinstance(local, bus.LocalNode):
        detail = local.detail if isinstance(local, bus.StageError) else repr(local)
        # The registry's own LocalNode errors already read "failed to get local node: <reason>".
        if not detail.startswith(_LOCAL_NODE_FAILED):
            detail = _LOCAL_NODE_FAILED + detail
        return internal(detail)
    call = capability.CapabilityCall(
        capability_id=rpc.VaultCapabilityID,
        method=rpc.VaultMethodSecretsGet,
        payload=wrapped.SerializeToString(deterministic=True),
        metadata=capability.CallMetadata(
            workflow_id=params.workflow_id,
            workflow_owner=params.owner,  # the raw owner, as upstream's tests assert
            workflow_execution_id=params.execution_id,
            workflow_don_id=local.workflow_don_id,
            workflow_don_config_version=local.workflow_don_config_version,
            reference_id=req.request_id,
        ),
    )
    requested = len(params.secrets or ())
    if requested > MAX_SECRETS_PER_REQUEST:
        return internal(
            f"vault execute failed: {requested} secrets requested, at most"
            f" {MAX_SECRETS_PER_REQUEST} per request"
        )
    try:
        outcome = await caps.execute(call, deadline)
    except CapabilityUnreachable as exc:
        return internal(f"vault execute failed: {exc}")
    if outcome.error:
        return internal(f"vault execute failed: {outcome.error}")
    answer = any_pb2.Any()
    vault_response = vault_pb2.GetSecretsResponse()
    try:
        answer.ParseFromString(outcome.payload)
        if not answer.Unpack(vault_response):
            raise DecodeError(f"payload is {answer.type_url!r}, not {VAULT_RESPONSE_TYPE}")
    except DecodeError as exc:
        return internal(f"failed to unmarshal vault response: {exc}")
    result = translate_vault_response(
        vault_response, params.enclave_public_key, user_errors=req.protocol == PROTOCOL_CURRENT
    )
    if isinstance(result, bus.StageError):
        return result
    return bus.DispatchResult(result=msgspec.Raw(rpc.encode_secrets_result(result)))


async def run(nc: Client, settings: NodeSettings) -> Service:
    registry, caps = await open_registry(nc, settings), NatsCapabilities(nc)

    async def serve(data: bytes, headers: Headers) -> bytes:
        received_at = accepted_at()  # the budget includes any wait for a slot
        try:
            req = bus.DISPATCH_REQUEST_DECODER.decode(data)
            deadline = deadline_for(req, settings, received_at)
            reply = await handle(req, registry, caps, deadline)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            reply = internal(f"bad dispatch request: {exc}")
        return bus.ENCODER.encode(reply)

    svc = Service(
        nc,
        failure_reply=bus.STAGE_FAILED,
        name="relay-dispatch-secrets",
        description="confidential.secrets.get -> vault@1.0.0",
        concurrency=settings.concurrency,
        metadata={"don": settings.don, "node": settings.node},
    )
    svc.on_stop(registry.close)
    add_readiness(svc, registry)
    await svc.add_endpoint(
        name="secrets-get",
        subject=subjects.dispatch(settings.don, settings.node, rpc.MethodSecretsGet),
        queue=subjects.dispatch_queue(rpc.MethodSecretsGet),
        handler=serve,
        queue_budget_s=settings.request_timeout_s,
        on_expired=expired_reply,
    )
    await svc.start()
    return svc
