"""What the ingress adds under `RELAY_PROTOCOL=current` (PROTOCOL 10): its key, the trust lookup,
the response memo, and the rules that turn a dispatch result into a signed one.

The ingress is the only actor that loads the node key (docs/security.md): it is the one that
assembles the answer, and the dispatchers, verifier and registry never need to sign anything.
At start it refuses to serve when the registry's peer id for this node is not its public key;
per request it checks again (the registry can change while it runs), so a node never signs with
a key the enclave would not count.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
from nats.aio.client import Client

from schemas import bus, current, rpc
from schemas.gojson import GoJSONError
from workers.ingress.memo import Memo, ResponseMemo, capability_key, secrets_key
from workers.ingress.memo_shared import SharedResponseMemo
from workers.protocol import signed
from workers.registry.actor import NOT_LOADED
from workers.registry.client import UNREACHABLE, RegistryLookups
from workers.runtime import nodekey
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.ingress")

TrustLookup = Callable[[float], Awaitable[bus.RegistryReply]]
CurrentParams = current.SecretsRequestParams | current.CapabilityRequestParams


class NodeKeyMismatch(RuntimeError):
    """This node's key is not the one the registry names for it: the node must not serve."""


@dataclass(frozen=True)
class CurrentProtocol:
    """The node key, where the trust anchors come from, and the memo of signed results."""

    key: signed.NodeKey
    trust: TrustLookup
    memo: Memo


def kind_of(method: str) -> str:
    """`secrets` or `capability`: how upstream's texts name a method."""
    return "secrets" if method == rpc.MethodSecretsGet else "capability"


def memo_key(params: CurrentParams) -> str:
    """The logical request (workers/ingress/memo.py explains both keys)."""
    if isinstance(params, current.CapabilityRequestParams):
        return capability_key(
            params.workflow_id, params.execution_id, params.reference_id, params.capability_id
        )
    # Everything the response hash binds of the request, nothing that may differ on a retry.
    cleaned = msgspec.structs.replace(params, attestation="", signed_compute_requests=None)
    digest = hashlib.sha256(current.encode_secrets_params(cleaned)).digest()
    return secrets_key(params.workflow_id, params.execution_id, digest)


def dispatch_params(params: CurrentParams) -> bytes:
    """What the dispatchers need of the params, as the n1 params JSON they decode natively.

    Not the whole current params: the EnclaveConfig and the forwarded compute requests are the
    ingress's business, and an n1 decoder skipping them took about 1 ms of a dispatcher's CPU per
    secrets request (16 µs for this form)."""
    if isinstance(params, current.CapabilityRequestParams):
        return rpc.encode_capability_params(
            rpc.CapabilityRequestParams(
                workflow_id=params.workflow_id,
                owner=params.owner,
                execution_id=params.execution_id,
                org_id=params.org_id,
                reference_id=params.reference_id,
                capability_id=params.capability_id,
                payload=params.payload,
            )
        )
    return rpc.encode_secrets_params(
        rpc.SecretsRequestParams(
            workflow_id=params.workflow_id,
            owner=params.owner,
            execution_id=params.execution_id,
            org_id=params.org_id,
            secrets=params.secrets,
            enclave_public_key=params.enclave_public_key,
        )
    )


def key_mismatch(own_peer_id: bytes, key: signed.NodeKey, node: str) -> str:
    return (
        f"node key {key.public_key.hex()} is not the peer id the registry holds for node "
        f"{node} ({own_peer_id.hex()})"
    )


def sign_result(key: signed.NodeKey, method: str, params: CurrentParams, result: bytes) -> bytes:
    """The signed result JSON (PROTOCOL 10.2-10.5) of a dispatcher's Go-encoded result.

    Raises `signed.InvalidParamsError` when `Validate` fails (the caller's -32603).
    """
    decoded: rpc.SecretsResponseResult | rpc.CapabilityResponseResult
    if method == rpc.MethodSecretsGet:
        decoded = current.decode_secrets_result(result)
    else:
        decoded = current.decode_capability_result(result)
    return signed.sign_result_json(key, method, params, decoded)


def answers(key: signed.NodeKey, method: str, params: CurrentParams, stored: bytes) -> bool:
    """Whether a remembered signed object is this node's signature over this request's params
    and its result: what a memo hit must be to be served. A retry of the same logical request
    passes; an entry another node's ingress wrote into the shared bucket does not, nor one
    signed for other params under the same key (upstream serves those; the enclave would then
    reject them)."""
    try:
        signed_object: current.SignedSecretsResponseResult | current.SignedCapabilityResponseResult
        if method == rpc.MethodSecretsGet:
            signed_object = current.decode_signed_secrets_result(stored)
        else:
            signed_object = current.decode_signed_capability_result(stored)
        response_hash = signed.response_hash(method, params, signed_object.result)
        signed.check_relay_signature(
            [key.public_key], response_hash, signed_object.signature.signature
        )
    except (GoJSONError, signed.SignedProtocolError, TypeError):
        return False
    return True


def load_key(settings: NodeSettings) -> signed.NodeKey:
    if settings.node_key is None:
        raise nodekey.NodeKeyError(
            "RELAY_PROTOCOL=current needs the node's key file: set RELAY_NODE_KEY"
            " (create one with `relay keys new --out FILE`)"
        )
    return nodekey.load(settings.node_key)


async def check_registered(
    key: signed.NodeKey, registry: RegistryLookups, settings: NodeSettings, deadline: float
) -> None:
    """Refuse to start when the loaded registry names another key (or none) for this node.

    A registry not read yet (or, with `actor` lookups, a registry actor not answering yet) is no
    verdict: the node starts, every request fails closed until the registry answers, and then
    the per-request check applies.
    """
    reply = await registry.trust(deadline)
    if isinstance(reply, bus.Trust):
        if reply.own_peer_id != key.public_key:
            raise NodeKeyMismatch(
                f"refusing to start: {key_mismatch(reply.own_peer_id, key, settings.node)}"
            )
        return
    detail = reply.detail if isinstance(reply, bus.StageError) else repr(reply)
    if NOT_LOADED in detail or detail.startswith(UNREACHABLE):
        # No verdict yet (the registry actor may be starting beside us, as under `relay up`).
        log.warning("registry not readable yet (%s): the node key is checked per request", detail)
        return
    raise NodeKeyMismatch(f"refusing to start: {detail}")


async def open_current(
    nc: Client, settings: NodeSettings, registry: RegistryLookups, deadline: float
) -> CurrentProtocol:
    key = load_key(settings)
    await check_registered(key, registry, settings, deadline)
    memo: Memo = (
        await SharedResponseMemo.open(
            nc, settings.node, js_domain=settings.js_domain, replicas=settings.kv_replicas
        )
        if settings.dedupe == "shared"
        else ResponseMemo()
    )
    log.info("serving the current protocol as peer id %s", key.public_key.hex())
    return CurrentProtocol(key=key, trust=registry.trust, memo=memo)
