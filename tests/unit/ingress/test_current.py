"""The ingress's current-protocol parts: the start-time key check, memo keys, the key setting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import bus, current, rpc
from workers.ingress.current import (
    NodeKeyMismatch,
    check_registered,
    load_key,
    memo_key,
)
from workers.protocol import binding, signed
from workers.registry.actor import NOT_LOADED
from workers.runtime import nodekey
from workers.runtime.settings import NodeSettings

KEY = signed.NodeKey(b"\x07" * 32)
OTHER = signed.NodeKey(b"\x08" * 32).public_key


class Lookups:
    """RegistryLookups answering `reply` to the trust lookup."""

    def __init__(self, reply: bus.RegistryReply) -> None:
        self.reply = reply

    async def measurements(self, deadline: float) -> bus.RegistryReply:
        raise AssertionError("not asked")

    async def capability(self, capability_id: str, deadline: float) -> bus.RegistryReply:
        raise AssertionError("not asked")

    async def local_node(self, deadline: float) -> bus.RegistryReply:
        raise AssertionError("not asked")

    async def trust(self, deadline: float) -> bus.RegistryReply:
        return self.reply

    async def close(self) -> None:
        return None


def trust(own: bytes) -> bus.Trust:
    return bus.Trust(
        revision=1,
        relay_f=1,
        relay_signers=[own],
        own_peer_id=own,
        workflow_f=1,
        workflow_members=[OTHER],
    )


def failure(detail: str) -> bus.StageError:
    return bus.StageError(code=-32603, message="internal error", detail=detail)


async def test_a_registry_naming_this_key_lets_the_ingress_start() -> None:
    """The registry's peer id for this node is the key's public key: no error."""
    await check_registered(KEY, Lookups(trust(KEY.public_key)), NodeSettings(), 0.0)


async def test_a_registry_naming_another_key_refuses_the_start_naming_both() -> None:
    """Another peer id: NodeKeyMismatch with both keys in hex."""
    with pytest.raises(NodeKeyMismatch) as caught:
        await check_registered(KEY, Lookups(trust(OTHER)), NodeSettings(node="node-3"), 0.0)
    assert str(caught.value) == (
        f"refusing to start: node key {KEY.public_key.hex()} is not the peer id the registry "
        f"holds for node node-3 ({OTHER.hex()})"
    )


@pytest.mark.parametrize(
    "detail", [f"failed to get relay trust: {NOT_LOADED}", "registry unreachable: timeout"]
)
async def test_a_registry_not_readable_yet_is_no_verdict(detail: str) -> None:
    """Not loaded, or the registry actor not answering yet: the start goes on."""
    await check_registered(KEY, Lookups(failure(detail)), NodeSettings(), 0.0)


async def test_a_loaded_registry_without_this_node_refuses_the_start() -> None:
    """A definite failure of a loaded registry (no peer ids, not a member) stops the start."""
    detail = "failed to get relay trust: relay DON relay-don has no peer ids in the registry"
    with pytest.raises(NodeKeyMismatch, match="refusing to start: failed to get relay trust"):
        await check_registered(KEY, Lookups(failure(detail)), NodeSettings(), 0.0)


def test_without_a_key_file_setting_the_current_protocol_names_the_variable() -> None:
    """RELAY_NODE_KEY unset under current: one clear line naming it and `relay keys new`."""
    with pytest.raises(nodekey.NodeKeyError, match=r"set RELAY_NODE_KEY.*relay keys new"):
        load_key(NodeSettings(protocol="current"))


def test_load_key_reads_the_file_the_setting_names(tmp_path: Path) -> None:
    """The loaded key is the file's key."""
    written = nodekey.write_new(tmp_path / "k")
    loaded = load_key(NodeSettings(protocol="current", node_key=tmp_path / "k"))
    assert loaded.public_key == written.public_key


def _secrets(**overrides: object) -> current.SecretsRequestParams:
    params = {
        "workflow_id": "wf",
        "owner": "0x" + "ab" * 20,
        "execution_id": "e",
        "secrets": [{"key": "K", "namespace": "main"}],
        "enclave_public_key": "aa",
    } | overrides
    decoded = binding.bind_current(rpc.MethodSecretsGet, json.dumps(params).encode()).params
    assert isinstance(decoded, current.SecretsRequestParams)
    return decoded


def test_the_secrets_memo_key_ignores_the_attestation_and_compute_requests_only() -> None:
    """A retry differs in attestation or forwarded signatures: same key; other params: not."""
    base = memo_key(_secrets())
    assert memo_key(_secrets(attestation="AAAA")) == base
    assert memo_key(_secrets(signed_compute_requests=[{"appID": "x"}])) == base
    assert memo_key(_secrets(enclave_public_key="bb")) != base
    assert memo_key(_secrets(secrets=[{"key": "L", "namespace": "main"}])) != base
    assert memo_key(_secrets(execution_id="e2")) != base


def test_the_capability_memo_key_is_the_logical_call() -> None:
    """Workflow, execution, reference and capability: the payload does not change the key."""
    params = {
        "workflow_id": "wf",
        "owner": "0x" + "ab" * 20,
        "execution_id": "e",
        "reference_id": "7",
        "capability_id": "echo@1.0.0",
        "payload": "AA==",
    }

    def key(**overrides: str) -> str:
        raw = json.dumps(params | overrides).encode()
        decoded = binding.bind_current(rpc.MethodCapabilityExec, raw).params
        assert isinstance(decoded, current.CapabilityRequestParams)
        return memo_key(decoded)

    assert key(payload="AQ==") == key()
    assert key(reference_id="8") != key()


def test_dispatchers_get_the_n1_fields_only_which_decode_to_the_same_values() -> None:
    """The EnclaveConfig and compute requests stay in the ingress; the rest is unchanged."""
    from workers.ingress.current import dispatch_params

    params = _secrets(
        org_id="org",
        enclave_config={"signers": ["AQ=="], "master_public_key": "Ag==", "t": 1, "f": 1},
        signed_compute_requests=[{"appID": "x"}],
    )
    sent = dispatch_params(params)
    assert b"enclave_config" not in sent
    assert b"signed_compute_requests" not in sent
    decoded = rpc.decode_secrets_params(sent)
    assert (decoded.workflow_id, decoded.owner, decoded.execution_id, decoded.org_id) == (
        "wf",
        "0x" + "ab" * 20,
        "e",
        "org",
    )
    assert decoded.secrets == params.secrets
    assert decoded.enclave_public_key == "aa"


def test_a_memo_hit_answers_only_a_request_it_was_signed_for_by_this_node() -> None:
    """This node's signature over these params: yes; other params, another key, garbage: no."""
    from workers.ingress.current import answers, sign_result

    params = _secrets()
    result = b'{"secrets":[{"id":{"key":"K","namespace":"main"},"ciphertext":"AA==","encrypted_shares":["AQ=="]}]}'
    stored = sign_result(KEY, rpc.MethodSecretsGet, params, result)
    assert answers(KEY, rpc.MethodSecretsGet, params, stored)
    assert not answers(KEY, rpc.MethodSecretsGet, _secrets(org_id="other"), stored)
    other_node = signed.NodeKey(b"\x09" * 32)
    assert not answers(other_node, rpc.MethodSecretsGet, params, stored)
    forged = sign_result(other_node, rpc.MethodSecretsGet, params, result)
    assert not answers(KEY, rpc.MethodSecretsGet, params, forged)
    assert not answers(KEY, rpc.MethodSecretsGet, params, b"not json")
    assert not answers(KEY, rpc.MethodSecretsGet, params, b'{"result":{}}')
