"""RELAY_PROTOCOL=current on a real node (PROTOCOL 10): signed answers and every error row it adds.

The node's actors run for real on a real nats-server behind a fake vault and a fake capability
DON; the test holds the seeds of the relay DON's and the Workflow DON's keys. Signatures are
checked with `cryptography` over payloads recomputed here from the spec (current_support.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas import capability, rpc
from schemas.proto.gen import sdk_pb2, vault_pb2
from tests.integration import current_support as cs
from tests.integration.node_errors_support import (
    OWNER,
    Relay,
    ask,
    assert_internal,
    envelope,
    error_bytes,
    logged_errors,
    module_seed,
    node_settings,
    relay_node,
    vault_answer,
)
from workers.attestation.testchain import TestChain
from workers.ingress.current import NodeKeyMismatch
from workers.node.process import NodeProcess
from workers.registry.devseed import seed_entries_for
from workers.registry.store import load_entries
from workers.runtime.natsserver import NatsServer
from workers.runtime.nodekey import NodeKeyError

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRETS, CAPABILITY = rpc.MethodSecretsGet, rpc.MethodCapabilityExec
RUN = base64.b64encode(sdk_pb2.CapabilityRequest(method="run").SerializeToString()).decode()


@dataclass
class Node:
    relay: Relay
    signers: cs.Keys  # the relay DON; the node under test is member 0
    workflow: cs.Keys  # the Workflow DON (F=1: F+1 = 2 signatures, 2F+1 = 3)


def current_seed(chain: TestChain, relay: cs.Keys, workflow: cs.Keys) -> dict[str, Any]:
    seed = module_seed(chain)
    for don in seed["dons"]:
        if don["name"] == "relay-don":
            don["peer_ids"] = [k.hex() for k in relay.public]
        if don["name"] == "workflow-don":
            don["peer_ids"] = [k.hex() for k in workflow.public]
    return seed


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(
    nats_server: NatsServer, relay_chain: TestChain, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Node]:
    """One node of real actors under the current protocol, its key in a 0600 file."""
    relay, workflow = cs.Keys(4), cs.Keys(4)
    tmp = tmp_path_factory.mktemp("current")
    root = tmp / "root.pem"
    root.write_bytes(relay_chain.root_pem)
    key_file = cs.write_key_file(tmp / "node-0.key", relay.private[0])
    seed = current_seed(relay_chain, relay, workflow)
    async with relay_node(
        nats_server, relay_chain, root, seed, protocol="current", node_key=key_file
    ) as running:
        yield Node(relay=running, signers=relay, workflow=workflow)


@pytest.fixture
def fresh(node: Node) -> Node:
    node.relay.vault.reset()
    node.relay.cap.reset()
    return node


def unique(name: str) -> str:
    """An execution id of its own per test: the memo must not answer from another test."""
    return f"{name}-{time.monotonic_ns()}"


def secrets_request(
    node: Node, request_id: str, *, signers: int = 2, **overrides: Any
) -> tuple[dict[str, Any], bytes]:
    """Attested secrets params authorised by `signers` Workflow-DON members."""
    execution_id = overrides.pop("execution_id", unique("exec"))
    params = cs.secrets_params(node.signers.public, execution_id=execution_id, **overrides)
    if "signed_compute_requests" not in overrides:
        params["signed_compute_requests"] = cs.signed_compute_requests(
            node.workflow.private[:signers],
            workflow_id=params["workflow_id"],
            execution_id=execution_id,
        )
    return params, cs.attested_current(node.relay.chain, SECRETS, params, request_id)


def capability_request(
    node: Node, request_id: str, **overrides: Any
) -> tuple[dict[str, Any], bytes]:
    overrides.setdefault("execution_id", unique("exec"))
    params = cs.capability_params(node.signers.public, **overrides)
    return params, cs.attested_current(node.relay.chain, CAPABILITY, params, request_id)


def verify_signed(node: Node, body: dict[str, Any], response_hash: bytes) -> None:
    """The node's signature verifies under its registered key; `signatures` repeats it."""
    signature = body["signature"]
    assert base64.b64decode(signature["signer"]) == node.signers.public[0]
    public = Ed25519PublicKey.from_public_bytes(node.signers.public[0])
    public.verify(base64.b64decode(signature["signature"]), cs.relay_payload(response_hash))
    assert body["signatures"] == [signature]


# --- success -----------------------------------------------------------------------------------


async def test_a_secrets_answer_is_signed_over_the_params_and_result(fresh: Node) -> None:
    """10.2-10.5: the result, the deprecated list and the signature, which verifies."""
    params, raw = secrets_request(fresh, "req-ok")
    answer = json.loads(await ask(fresh.relay.nc, raw))
    assert (answer["id"], answer["method"]) == ("req-ok", SECRETS)
    body = answer["result"]
    assert list(body) == ["result", "signatures", "signature"]
    ciphertext = base64.b64encode(b"encrypted-value").decode()
    assert body["result"] == {
        "secrets": [
            {
                "id": {"key": "API_KEY", "namespace": "main"},
                "ciphertext": ciphertext,
                "encrypted_shares": [base64.b64encode(b"share-1").decode()],
            }
        ]
    }
    verify_signed(fresh, body, cs.secrets_response_hash(params, body["result"]))


async def test_the_vault_request_carries_the_workflow_owner_and_org(fresh: Node) -> None:
    """10.11 / #21991: workflow_owner (EIP-55) and org_id on the vault request."""
    _, raw = secrets_request(fresh, "req-org", org_id="org-7")
    answer = json.loads(await ask(fresh.relay.nc, raw))
    assert "result" in answer, answer
    (call,) = fresh.relay.vault.calls
    any_payload = vault_pb2.GetSecretsRequest()
    from google.protobuf import any_pb2

    wrapped = any_pb2.Any()
    wrapped.ParseFromString(call.payload)
    assert wrapped.Unpack(any_payload)
    assert any_payload.workflow_owner == "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
    assert any_payload.org_id == "org-7"


async def test_a_capability_answer_is_signed_and_a_capability_error_is_a_signed_result(
    fresh: Node,
) -> None:
    """A capability that fails is not a relay error: its `error` is signed like a payload."""
    fresh.relay.cap.answer = lambda call: capability.CapabilityOutcome(error="cap says no")
    params, raw = capability_request(fresh, "req-cap", payload=RUN)
    answer = json.loads(await ask(fresh.relay.nc, raw))
    body = answer["result"]
    assert body["result"] == {"error": "cap says no"}
    verify_signed(fresh, body, cs.capability_response_hash(params, body["result"]))


# --- N4: the memo ------------------------------------------------------------------------------


async def test_a_retry_with_a_new_gateway_id_gets_the_same_signed_result_rewrapped(
    fresh: Node,
) -> None:
    """The second id's answer is byte-identical but for the id; the vault was asked once."""
    params, first_raw = secrets_request(fresh, "req-first")
    retry_raw = cs.attested_current(fresh.relay.chain, SECRETS, params, "req-retry")
    first = await ask(fresh.relay.nc, first_raw)
    retry = await ask(fresh.relay.nc, retry_raw)
    assert retry == first.replace(b'"id":"req-first"', b'"id":"req-retry"')
    assert len(fresh.relay.vault.calls) == 1


async def test_concurrent_requests_of_one_logical_request_ask_the_vault_once(fresh: Node) -> None:
    """In-flight dedupe: three ids at once, one vault call, three identical signed results."""
    fresh.relay.vault.delay_s = 0.3
    params, _ = secrets_request(fresh, "x")
    raws = [cs.attested_current(fresh.relay.chain, SECRETS, params, f"req-c{i}") for i in range(3)]
    answers = await asyncio.gather(*(ask(fresh.relay.nc, r) for r in raws))
    results = {json.dumps(json.loads(a)["result"]) for a in answers}
    assert len(results) == 1
    assert "signature" in json.loads(answers[0])["result"]
    assert len(fresh.relay.vault.calls) == 1


async def test_an_error_is_not_remembered_so_a_retry_asks_the_vault_again(fresh: Node) -> None:
    """Only successes are memoised: after a vault error, a retry reaches the vault again."""
    fresh.relay.vault.answer = vault_answer(_error_secret("key does not exist"))
    params, raw = secrets_request(fresh, "req-e1")
    await ask(fresh.relay.nc, raw)
    fresh.relay.vault.answer = fresh.relay.vault.default
    retry = await ask(
        fresh.relay.nc, cs.attested_current(fresh.relay.chain, SECRETS, params, "req-e2")
    )
    assert "result" in json.loads(retry)
    assert len(fresh.relay.vault.calls) == 2


# --- vault errors (10.11) ----------------------------------------------------------------------


def _error_secret(message: str) -> vault_pb2.GetSecretsResponse:
    response = vault_pb2.GetSecretsResponse()
    secret = response.responses.add()
    secret.id.key, secret.id.namespace = "API_KEY", "main"
    secret.error = message
    return response


async def test_a_vault_user_error_reaches_the_enclave_as_invalid_params(fresh: Node) -> None:
    """-32602 with `vault error for secret <ns>/<key>: <msg>` on the wire."""
    fresh.relay.vault.answer = vault_answer(_error_secret("key does not exist"))
    _, raw = secrets_request(fresh, "req-vu")
    assert await ask(fresh.relay.nc, raw) == error_bytes(
        "req-vu", SECRETS, -32602, "vault error for secret main/API_KEY: key does not exist"
    )


async def test_the_vault_system_fallback_is_an_internal_error(
    fresh: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """`failed to handle get secret request` is a system error: -32603, detail in the log."""
    fresh.relay.vault.answer = vault_answer(_error_secret("failed to handle get secret request"))
    _, raw = secrets_request(fresh, "req-vs")
    assert_internal(
        await ask(fresh.relay.nc, raw),
        caplog,
        request_id="req-vs",
        method=SECRETS,
        detail="vault error for secret main/API_KEY: failed to handle get secret request",
    )


# --- EnclaveConfig (10.7): -32603 --------------------------------------------------------------


def _config_cases(node: Node) -> list[tuple[Any, str]]:
    relay = node.signers.public
    other = cs.Keys(1).public[0]
    swapped = [*sorted(relay)[:3], other]
    return [
        (None, "enclave config is required"),
        (
            cs.enclave_config(relay, f=0),
            "enclave config F 0 does not meet the minimum required DON F 1",
        ),
        (
            cs.enclave_config(relay[:3]),
            "enclave config signers count mismatch: enclave reports 3, expected 4",
        ),
        (
            cs.enclave_config(swapped),
            f"enclave config signer mismatch at sorted index {sorted(swapped).index(other)}: "
            f"enclave reports {other.hex()}, expected {sorted(relay)[sorted(swapped).index(other)].hex()}",
        ),
    ]


@pytest.mark.parametrize("case", range(4))
async def test_an_enclave_config_that_does_not_match_the_relay_don_is_an_internal_error(
    fresh: Node, caplog: pytest.LogCaptureFixture, case: int
) -> None:
    """Missing, F below the DON's, wrong count, wrong signer: -32603 before the vault is asked."""
    config, detail = _config_cases(fresh)[case]
    if config is None:
        pass
    params, _ = secrets_request(fresh, "x")
    if config is None:
        params.pop("enclave_config")
    else:
        params["enclave_config"] = config
    raw = cs.attested_current(fresh.relay.chain, SECRETS, params, f"req-ec{case}")
    assert_internal(
        await ask(fresh.relay.nc, raw),
        caplog,
        request_id=f"req-ec{case}",
        method=SECRETS,
        detail=detail,
    )
    assert fresh.relay.vault.calls == []


async def test_a_higher_enclave_f_is_accepted(fresh: Node) -> None:
    """F above the DON's only makes the enclave stricter: served."""
    params, _ = secrets_request(fresh, "x")
    params["enclave_config"] = cs.enclave_config(fresh.signers.public, f=2)
    raw = cs.attested_current(fresh.relay.chain, SECRETS, params, "req-f2")
    assert "result" in json.loads(await ask(fresh.relay.nc, raw))


# --- Workflow-DON authorization (10.8): -32602 -------------------------------------------------


async def _authz(node: Node, request_id: str, params: dict[str, Any]) -> bytes:
    raw = cs.attested_current(node.relay.chain, SECRETS, params, request_id)
    return await ask(node.relay.nc, raw)


async def test_missing_signed_compute_requests_is_invalid_params(fresh: Node) -> None:
    """No entries: `missing signed compute requests`, and no vault call."""
    params, _ = secrets_request(fresh, "x")
    params.pop("signed_compute_requests")
    assert await _authz(fresh, "req-a1", params) == error_bytes(
        "req-a1", SECRETS, -32602, "missing signed compute requests"
    )
    assert fresh.relay.vault.calls == []


async def test_one_signature_is_not_f_plus_one(fresh: Node) -> None:
    """F=1 needs 2 distinct members; one signer (even repeated) is not enough."""
    params, _ = secrets_request(fresh, "x", signers=1)
    params["signed_compute_requests"] *= 2  # a duplicate counts once
    assert await _authz(fresh, "req-a2", params) == error_bytes(
        "req-a2", SECRETS, -32602, "insufficient Workflow DON signatures: 1 unique signers, need 2"
    )


async def test_signatures_of_non_members_are_not_counted(fresh: Node) -> None:
    """Keys outside the Workflow DON verify under no member and are skipped."""
    execution_id = unique("exec")
    params, _ = secrets_request(fresh, "x", execution_id=execution_id)
    params["signed_compute_requests"] = cs.signed_compute_requests(
        cs.Keys(3).private, workflow_id=params["workflow_id"], execution_id=execution_id
    )
    assert await _authz(fresh, "req-a3", params) == error_bytes(
        "req-a3", SECRETS, -32602, "insufficient Workflow DON signatures: 0 unique signers, need 2"
    )


async def test_entries_for_different_compute_requests_are_refused(fresh: Node) -> None:
    """Two entries with different hashes: they do not share one compute request."""
    execution_id = unique("exec")
    params, _ = secrets_request(fresh, "x", execution_id=execution_id)
    other = cs.signed_compute_requests(
        fresh.workflow.private[1:2],
        workflow_id=params["workflow_id"],
        execution_id=execution_id,
        app_id="another@1.0.0",
    )
    params["signed_compute_requests"] = params["signed_compute_requests"][:1] + other
    assert await _authz(fresh, "req-a4", params) == error_bytes(
        "req-a4",
        SECRETS,
        -32602,
        "forwarded signed compute requests do not share one compute request",
    )


async def test_public_data_that_is_not_a_workflow_execution_is_refused(fresh: Node) -> None:
    """Undecodable signed public data: the protobuf error, -32602."""
    execution_id = unique("exec")
    params, _ = secrets_request(fresh, "x", execution_id=execution_id)
    params["signed_compute_requests"] = cs.signed_compute_requests(
        fresh.workflow.private[:2],
        workflow_id=params["workflow_id"],
        execution_id=execution_id,
        public_data=b"\x0a\x05ab",  # field 1 claims 5 bytes, 2 follow
    )
    answer = json.loads(await _authz(fresh, "req-a5", params))
    assert answer["error"]["code"] == -32602
    assert answer["error"]["message"].startswith(
        "failed to unmarshal workflow execution from public data: "
    )


@pytest.mark.parametrize(
    ("signed_owner", "signed_workflow", "message"),
    [
        ("not-an-address", "wf-secrets-1", "invalid owner address"),
        (
            "0x" + "11" * 20,
            "wf-secrets-1",
            f'owner not authorized: request "{OWNER}" vs signed "0x{"11" * 20}"',
        ),
        (
            OWNER.upper().replace("0X", "0x"),
            "wf-other",
            'workflow_id not authorized: request "wf-secrets-1" vs signed "wf-other"',
        ),
    ],
)
async def test_a_compute_request_for_another_owner_or_workflow_is_refused(
    fresh: Node, signed_owner: str, signed_workflow: str, message: str
) -> None:
    """Owner compared as addresses (case-insensitive), workflow id exactly: -32602 texts."""
    execution_id = unique("exec")
    params, _ = secrets_request(fresh, "x", execution_id=execution_id)
    params["signed_compute_requests"] = cs.signed_compute_requests(
        fresh.workflow.private[:2],
        workflow_id=signed_workflow,
        execution_id=execution_id,
        owner=signed_owner,
    )
    assert await _authz(fresh, "req-a6", params) == error_bytes("req-a6", SECRETS, -32602, message)
    assert fresh.relay.vault.calls == []


# --- Validate at signing, DomainHash v2 --------------------------------------------------------


async def test_params_that_fail_validate_at_signing_are_an_internal_error_after_the_call(
    fresh: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """An owner that is not 0x + 40 hex passes to the capability, then fails signing: -32603."""
    fresh.relay.cap.answer = lambda call: capability.CapabilityOutcome(error="ran")
    _, raw = capability_request(fresh, "req-v1", owner="0xowner", payload=RUN)
    assert_internal(
        await ask(fresh.relay.nc, raw),
        caplog,
        request_id="req-v1",
        method=CAPABILITY,
        detail="failed to sign capability response: hash capability response: invalid capability "
        "request params: owner must be a 0x-prefixed 20-byte hex address",
    )
    assert len(fresh.relay.cap.calls) == 1


async def test_an_attestation_bound_with_domainhash_v1_is_refused(
    fresh: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """The current node binds with DomainHash v2 (10.9): a v1 user_data fails attestation."""
    params, _ = secrets_request(fresh, "x")
    raw = cs.attested_v1(fresh.relay.chain, SECRETS, params, "req-d1")
    assert await ask(fresh.relay.nc, raw) == error_bytes(
        "req-d1", SECRETS, -32603, "internal error"
    )
    ((_code, err),) = logged_errors(caplog, "req-d1")
    assert "user data" in err.lower() or "user_data" in err.lower(), err
    assert fresh.relay.vault.calls == []


# --- BFT quorum, node keys -----------------------------------------------------------------------


async def test_a_workflow_don_asking_for_bft_needs_two_f_plus_one_signatures(fresh: Node) -> None:
    """With require_bft_quorum F+1 = 2 signatures are refused (need 3); 3 are served."""
    seed = current_seed(fresh.relay.chain, fresh.signers, fresh.workflow)
    bft = json.loads(json.dumps(seed))
    for don in bft["dons"]:
        if don["name"] == "workflow-don":
            don["require_bft_quorum"] = True
    await load_entries(fresh.relay.nc, seed_entries_for(bft))
    try:
        message = ""
        for attempt in range(40):  # the node sees the new view within about a second
            _, raw = secrets_request(fresh, f"req-b{attempt}", signers=2)
            answer = json.loads(await ask(fresh.relay.nc, raw))
            message = answer.get("error", {}).get("message", "")
            if message:
                break
            await asyncio.sleep(0.1)
        assert message == "insufficient Workflow DON signatures: 2 unique signers, need 3"
        _, raw = secrets_request(fresh, "req-b3", signers=3)
        assert "result" in json.loads(await ask(fresh.relay.nc, raw))
    finally:
        await load_entries(fresh.relay.nc, seed_entries_for(seed))
        for _ in range(40):  # back to F+1 before the next test (bounded)
            _, raw = secrets_request(fresh, "req-b-back", signers=2)
            if "result" in json.loads(await ask(fresh.relay.nc, raw)):
                break
            await asyncio.sleep(0.1)


async def test_an_ingress_whose_key_is_not_its_registry_entry_refuses_to_start(
    fresh: Node, tmp_path: Any
) -> None:
    """Another key than the registry's peer id for node-0: start fails with a clear message."""
    other = cs.write_key_file(tmp_path / "other.key", cs.Keys(1).private[0])
    root = tmp_path / "root.pem"
    root.write_bytes(fresh.relay.chain.root_pem)
    settings = node_settings(fresh.relay.url, root, protocol="current", node_key=other)
    with pytest.raises(NodeKeyMismatch, match=r"refusing to start: node key .* is not the peer id"):
        await NodeProcess(settings, actors=("ingress",)).start()


async def test_an_ingress_without_a_usable_key_file_refuses_to_start(
    fresh: Node, tmp_path: Any
) -> None:
    """No RELAY_NODE_KEY, or a key file others can read: start fails, naming the problem."""
    root = tmp_path / "root.pem"
    root.write_bytes(fresh.relay.chain.root_pem)
    missing = node_settings(fresh.relay.url, root, protocol="current")
    with pytest.raises(NodeKeyError, match="set RELAY_NODE_KEY"):
        await NodeProcess(missing, actors=("ingress",)).start()
    key = cs.write_key_file(tmp_path / "node.key", fresh.signers.private[0])
    key.chmod(0o644)
    too_open = node_settings(fresh.relay.url, root, protocol="current", node_key=key)
    with pytest.raises(NodeKeyError, match="too open"):
        await NodeProcess(too_open, actors=("ingress",)).start()


async def test_a_registry_that_changes_this_nodes_peer_id_stops_it_signing(
    fresh: Node, caplog: pytest.LogCaptureFixture
) -> None:
    """Per request: once the registry names another key for node-0, answers are -32603."""
    seed = current_seed(fresh.relay.chain, fresh.signers, fresh.workflow)
    moved = json.loads(json.dumps(seed))
    replacement = cs.Keys(1).public[0]
    for don in moved["dons"]:
        if don["name"] == "relay-don":
            don["peer_ids"][0] = replacement.hex()
    await load_entries(fresh.relay.nc, seed_entries_for(moved))
    try:
        answer: dict[str, Any] = {}
        for attempt in range(40):
            _, raw = capability_request(fresh, f"req-k{attempt}", payload=RUN)
            answer = json.loads(await ask(fresh.relay.nc, raw))
            if "error" in answer:
                break
            await asyncio.sleep(0.1)
        assert answer["error"] == {"code": -32603, "message": "internal error"}
        ((_, err),) = logged_errors(caplog, answer["id"])
        assert err == (
            f"node key {fresh.signers.public[0].hex()} is not the peer id the registry holds "
            f"for node node-0 ({replacement.hex()})"
        )
    finally:
        await load_entries(fresh.relay.nc, seed_entries_for(seed))
        for _ in range(40):
            _, raw = capability_request(fresh, "req-k-back", payload=RUN)
            if "result" in json.loads(await ask(fresh.relay.nc, raw)):
                break
            await asyncio.sleep(0.1)


# --- more rows: Validate of secrets at signing, new-field decoding, waiters sharing an error ------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"secrets": [{"key": "API_KEY", "namespace": ""}]},
            "invalid secrets request params: secrets[0].namespace is required",
        ),
        (
            {"enclave_config": {"master_public_key": None}},
            "invalid secrets request params: enclave_config.master_public_key must be non-empty",
        ),
    ],
)
async def test_secrets_params_that_fail_validate_are_an_internal_error_after_the_vault_call(
    fresh: Node, caplog: pytest.LogCaptureFixture, change: dict[str, Any], reason: str
) -> None:
    """An empty namespace (the vault defaults it to main) or an EnclaveConfig without its key
    (not compared by the check) pass to the vault, then fail Validate at signing: -32603."""
    execution_id = unique("exec")
    params, _ = secrets_request(fresh, "x", execution_id=execution_id)
    if "enclave_config" in change:
        params["enclave_config"] = {**params["enclave_config"], **change["enclave_config"]}
    else:
        params.update(change)
    raw = cs.attested_current(fresh.relay.chain, SECRETS, params, "req-vs1")
    assert_internal(
        await ask(fresh.relay.nc, raw),
        caplog,
        request_id="req-vs1",
        method=SECRETS,
        detail=f"failed to sign secrets response: hash secrets response: {reason}",
    )
    assert len(fresh.relay.vault.calls) == 1


async def test_a_new_field_of_the_wrong_type_is_invalid_params_with_gos_text(fresh: Node) -> None:
    """The current field set is decoded as Go does: a negative uint32 `f` is Go's -32602."""
    params, _ = secrets_request(fresh, "x")
    params["enclave_config"] = {**params["enclave_config"], "f": -1}
    raw = envelope(SECRETS, {**params, "attestation": "AAAA"}, "req-t1")
    answer = json.loads(await ask(fresh.relay.nc, raw))
    assert answer["error"]["code"] == -32602
    assert answer["error"]["message"] == (
        "json: cannot unmarshal number -1 into Go struct field "
        "EnclaveConfig.enclave_config.f of type uint32"
    )


async def test_waiters_on_a_failing_request_get_its_error_and_the_vault_is_asked_once(
    fresh: Node,
) -> None:
    """In-flight dedupe shares errors too: the same -32602 text under each waiter's own id."""
    fresh.relay.vault.delay_s = 0.3
    fresh.relay.vault.answer = vault_answer(_error_secret("key does not exist"))
    params, _ = secrets_request(fresh, "x")
    raws = [cs.attested_current(fresh.relay.chain, SECRETS, params, f"req-w{i}") for i in range(3)]
    answers = await asyncio.gather(*(ask(fresh.relay.nc, r) for r in raws))
    for i, answer in enumerate(answers):
        assert answer == error_bytes(
            f"req-w{i}", SECRETS, -32602, "vault error for secret main/API_KEY: key does not exist"
        )
    assert len(fresh.relay.vault.calls) == 1
