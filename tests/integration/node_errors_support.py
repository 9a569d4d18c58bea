"""Shared by the PROTOCOL 2.5 / 6.1 node tests: the registry seed, requests, fake DONs, log checks.

A fake DON is a `nats.micro` service on the real `cap.v1.<capability>.<verb>` subject, in the
`capability` queue group like the reference workers; it records every call it received and
answers whatever its current `answer` callable returns, so a test crafts exactly the misbehaviour
its row needs.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import any_pb2
from nats.aio.client import Client

from schemas import capability, rpc, subjects
from schemas.proto.gen import vault_pb2
from workers.attestation.testchain import TestChain
from workers.node.process import NodeProcess
from workers.protocol import binding
from workers.reference.vault import capability_service
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime.bus import Headers, Service, connect, request
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

DON, NODE = "relay-don", "node-0"
WORKFLOW_DON_ID, WORKFLOW_DON_CONFIG_VERSION = 42, 7
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
OWNER_EIP55 = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
ENCLAVE_KEY = "aabbcc"  # upstream's vault fixture encrypts its shares to this key
EXECUTION_ID = "ab" * 32
FAKE_CAP = "fake-cap@1.0.0"
FAKE_METHODS = ("run",)
CW = rpc.ConfidentialWorkflowsCapabilityID

Answer = Callable[[capability.CapabilityCall], capability.CapabilityOutcome]


def node_settings(url: str, root_pem: Path, **extra: Any) -> NodeSettings:
    return NodeSettings(
        don=DON,
        node=NODE,
        nats_url=url,
        dev_root_pem=root_pem,
        request_timeout_s=3.0,
        stage_attempt_timeout_s=0.5,
        **extra,
    )


def module_seed(chain: TestChain) -> dict[str, Any]:
    """The example registry: the workflow DON is DON 42 at config version 7 (upstream's local
    node), and the capability DON also lists the fake capability."""
    seed = seed_with_measurements([chain.trusted_values_json()])
    for don in seed["dons"]:
        if don["name"] == "workflow-don":
            don["id"], don["config_version"] = WORKFLOW_DON_ID, WORKFLOW_DON_CONFIG_VERSION
        if don["name"] == "capability-don":
            don["capabilities"].append(FAKE_CAP)
            don["configs"][FAKE_CAP] = {}
    for node in seed["nodes"].values():
        node["workflow_don_id"] = WORKFLOW_DON_ID
    return seed


# --- requests ---------------------------------------------------------------------------------


def envelope(method: str, params: Any, request_id: str = "req-1", *, omit: bool = False) -> bytes:
    """A JSON-RPC request; `params` is raw JSON bytes, a JSON value, or left out with `omit`."""
    body = f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"method":{json.dumps(method)}'
    if not omit:
        raw = params if isinstance(params, bytes) else json.dumps(params).encode()
        body += ',"params":' + raw.decode()
    return (body + "}").encode()


def attested(
    chain: TestChain,
    method: str,
    params: dict[str, Any],
    request_id: str = "req-1",
    **document: Any,
) -> bytes:
    """`params` with an attestation whose user_data binds them (document fields overridable)."""
    bound = binding.bind(method, json.dumps(params).encode())
    fields: dict[str, Any] = {"user_data": bound.user_data, **document}
    doc = chain.document(**fields)
    return envelope(method, {**params, "attestation": base64.b64encode(doc).decode()}, request_id)


def secrets_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow_id": "wf-secrets-1",
        "owner": OWNER,
        "execution_id": EXECUTION_ID,
        "secrets": [{"key": "API_KEY", "namespace": ""}],
        "enclave_public_key": ENCLAVE_KEY,
    }
    params.update(overrides)
    return params


def capability_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "workflow_id": "wf-1",
        "owner": "0xowner",
        "execution_id": EXECUTION_ID,
        "reference_id": "17",
        "capability_id": FAKE_CAP,
        "payload": "",
    }
    params.update(overrides)
    return params


async def ask(nc: Client, raw: bytes) -> bytes:
    """One request to the node's rpc subject; the raw response bytes."""
    return await request(nc, subjects.rpc(DON, NODE), raw, timeout_s=5.0)


def error_bytes(request_id: str, method: str, code: int, message: str) -> bytes:
    """The exact wire bytes of a node error response as Go writes them: this key order, no `data`.

    Written out here rather than with the code's encoder; `json.dumps` agrees with Go's encoder
    only for ASCII without `<`, `>` and `&` (Go escapes those, and leaves UTF-8 unescaped).
    """
    for text in (request_id, method, message):
        assert text.isascii(), text
        assert not set(text) & set("<>&"), text
    return (
        f'{{"jsonrpc":"2.0","id":{json.dumps(request_id)},"method":{json.dumps(method)},'
        f'"error":{{"code":{code},"message":{json.dumps(message)}}}}}'
    ).encode()


# --- the log ----------------------------------------------------------------------------------


def logged_errors(caplog: pytest.LogCaptureFixture, request_id: str) -> list[tuple[int, str]]:
    """(errorCode, err) of every ingress "request error" record for this request id."""
    return [
        (getattr(r, "errorCode", 0), getattr(r, "err", ""))
        for r in caplog.records
        if r.name == "relay.ingress"
        and r.getMessage() == "request error"
        and getattr(r, "request_id", None) == request_id
    ]


def assert_internal(
    raw: bytes,
    caplog: pytest.LogCaptureFixture,
    *,
    request_id: str,
    method: str,
    detail: str,
    prefix: bool = False,
) -> str:
    """The wire says only `internal error` (id and method echoed); the log has the detail."""
    assert raw == error_bytes(request_id, method, rpc.ErrInternal, rpc.INTERNAL_ERROR_MESSAGE), raw
    ((code, err),) = logged_errors(caplog, request_id)
    assert code == rpc.ErrInternal, (code, err)
    if prefix:
        assert err.startswith(detail), (err, detail)
    else:
        assert err == detail, (err, detail)
    return err


# --- fake DONs --------------------------------------------------------------------------------


class FakeDon:
    """A capability DON stand-in: records each call, answers with `answer` (settable per test)."""

    def __init__(self, answer: Answer) -> None:
        self.default = answer
        self.answer = answer
        self.delay_s = 0.0  # a slow DON: how long each call takes before it is answered
        self.calls: list[capability.CapabilityCall] = []
        self.service: Service | None = None

    def reset(self) -> FakeDon:
        self.answer = self.default
        self.delay_s = 0.0
        self.calls.clear()
        return self

    async def start(
        self, url: str, *, capability_id: str, methods: tuple[str, ...], name: str
    ) -> FakeDon:
        nc = await connect(url, actor=name)  # its own connection: stopping drains it

        async def serve(data: bytes, headers: Headers) -> bytes:
            call = capability.CALL_DECODER.decode(data)
            self.calls.append(call)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return capability.ENCODER.encode(self.answer(call))

        self.service = await capability_service(
            nc,
            capability_id=capability_id,
            methods=methods,
            name=name,
            description=f"fake {capability_id}",
            handler=serve,
        )
        return self

    async def stop(self) -> None:
        """Stop serving and close the connection (`start` may be called again after)."""
        service, self.service = self.service, None
        if service is not None:
            await service.stop()


def packed(message: Any) -> bytes:
    """A protobuf message wrapped in a serialised Any (what the cap.v1 payload carries)."""
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped.SerializeToString(deterministic=True)


def vault_answer(response: vault_pb2.GetSecretsResponse) -> Answer:
    """A vault that answers `response` to every call."""
    outcome = capability.CapabilityOutcome(payload=packed(response))
    return lambda call: outcome


def upstream_vault_response(
    *,
    key: str = "API_KEY",
    namespace: str = "main",
    encrypted_value: str = b"encrypted-value".hex(),
    shares: tuple[str, ...] = (b"share-1".hex(),),
    encryption_key: str = ENCLAVE_KEY,
) -> vault_pb2.GetSecretsResponse:
    """Upstream's vault fixture: one secret, hex ciphertext, one hex share for the enclave key."""
    response = vault_pb2.GetSecretsResponse()
    secret = response.responses.add()
    secret.id.key, secret.id.namespace, secret.id.owner = key, namespace, OWNER_EIP55
    secret.data.encrypted_value = encrypted_value
    group = secret.data.encrypted_decryption_key_shares.add()
    group.encryption_key = encryption_key
    group.shares.extend(shares)
    return response


# --- one node ---------------------------------------------------------------------------------

NODE_ACTORS = (
    "registry",
    "verifier",
    "dispatch-secrets",
    "dispatch-capability",
    "echo",  # the reference echo@1.0.0: the well-behaved capability DON
    "ingress",
)


@dataclass
class Relay:
    """A running node, a client, and the fake vault and fake capability DONs behind it."""

    url: str
    nc: Client
    chain: TestChain
    vault: FakeDon
    cap: FakeDon


@asynccontextmanager
async def relay_node(
    server: NatsServer,
    chain: TestChain,
    root_pem: Path,
    seed: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[Relay]:
    """Seed the registry, start the fakes and the node's real actors (`settings` overriding
    the node's); stop all of it after."""
    nc = await connect(server.url, actor="test")
    await load_entries(nc, seed_entries_for(seed if seed is not None else module_seed(chain)))
    vault = FakeDon(vault_answer(upstream_vault_response()))
    cap = FakeDon(lambda call: capability.CapabilityOutcome(error="no answer configured"))
    node = NodeProcess(node_settings(server.url, root_pem, **settings), actors=NODE_ACTORS)
    try:
        await vault.start(
            server.url,
            capability_id=rpc.VaultCapabilityID,
            methods=(rpc.VaultMethodSecretsGet,),
            name="fake-vault",
        )
        await cap.start(server.url, capability_id=FAKE_CAP, methods=FAKE_METHODS, name="fake-cap")
        await node.start()
        yield Relay(url=server.url, nc=nc, chain=chain, vault=vault, cap=cap)
    finally:
        await node.stop()
        await vault.stop()
        await cap.stop()
        await nc.close()
