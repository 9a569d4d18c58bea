"""EnclaveClient end to end without a bus: its body goes through the relay's own binding, the
reference vault and the relay's translation, and the answer opens with the call's key."""

from __future__ import annotations

import json

import msgspec
import pytest
from google.protobuf import any_pb2

from schemas import capability, current, rpc
from schemas.proto.gen import vault_pb2
from workers.attestation.testchain import TestChain
from workers.dispatch import secrets as dispatch_secrets
from workers.enclave.attest import SimulatedSource
from workers.enclave.client import EnclaveClient
from workers.enclave.errors import AnswerError, NoQuorum, RelayError
from workers.enclave.shares import DecryptionError
from workers.protocol import binding, enclave_config, owner, signed
from workers.reference import vault

OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
STORE = vault.VaultStore(
    seed=bytes(32),
    values={
        (owner.to_checksum_address(OWNER), "main", "API_KEY"): b"s3cr3t",
        (owner.to_checksum_address(OWNER), "main", "GONE"): b"dropped by the relay below",
    },
)


class InProcessRelay:
    """A synchronous transport answering like an honest node: bind, vault, translate."""

    def __init__(self, *, rewrite: dict[str, object] | None = None, drop: str = "") -> None:
        self.rewrite = rewrite or {}
        self.drop = drop

    def send(self, body: bytes) -> bytes:
        request = json.loads(body)
        bound = binding.bind(request["method"], json.dumps(request["params"]).encode())
        assert isinstance(bound.params, rpc.SecretsRequestParams)
        vault_request = dispatch_secrets.build_vault_request(bound.params, bound.params.owner)
        wrapped = any_pb2.Any()
        wrapped.Pack(vault_request)
        outcome = vault.answer(
            STORE,
            capability.CapabilityCall(
                capability_id=rpc.VaultCapabilityID,
                method=rpc.VaultMethodSecretsGet,
                payload=wrapped.SerializeToString(),
                metadata=capability.CallMetadata(reference_id=request["id"]),
            ),
        )
        answer, response = any_pb2.Any(), vault_pb2.GetSecretsResponse()
        answer.ParseFromString(outcome.payload)
        answer.Unpack(response)
        result = dispatch_secrets.translate_vault_response(
            response, bound.params.enclave_public_key
        )
        assert isinstance(result, rpc.SecretsResponseResult)
        envelope = json.loads(
            rpc.encode_response(
                id=request["id"], method=request["method"], result=rpc.encode_secrets_result(result)
            )
        )
        envelope.update(self.rewrite)
        if self.drop:
            entries = envelope["result"]["secrets"]
            envelope["result"]["secrets"] = [e for e in entries if e["id"]["key"] != self.drop]
        return json.dumps(envelope).encode()


@pytest.fixture(scope="module")
def client() -> EnclaveClient:
    return EnclaveClient(
        source=SimulatedSource(TestChain()), workflow_id="wf", owner=OWNER, execution_id="00" * 32
    )


def test_a_secret_fetched_through_the_relay_path_opens_with_the_calls_key(
    client: EnclaveClient,
) -> None:
    """get_secrets returns the stored value, opened with the fresh per-call key."""
    (secret,) = client.get_secrets(InProcessRelay(), [("", "API_KEY")])
    assert (secret.namespace, secret.key, secret.value, secret.error) == (
        "main",
        "API_KEY",
        b"s3cr3t",
        "",
    )


def test_an_answer_for_another_call_does_not_open(client: EnclaveClient) -> None:
    """Shares sealed for one call's key and id do not open with another call's."""
    first, second = client.secrets_call([("", "API_KEY")]), client.secrets_call([("", "API_KEY")])
    answer = json.loads(InProcessRelay().send(first.body))
    answer["id"] = second.prepared.id
    with pytest.raises(DecryptionError):
        client.open_secrets(second, json.dumps(answer).encode())


def test_a_relay_error_is_raised_with_its_code_and_message(client: EnclaveClient) -> None:
    """An error envelope becomes RelayError(code, message)."""
    call = client.secrets_call([("", "API_KEY")])
    relay = InProcessRelay(
        rewrite={"result": None, "error": {"code": -32603, "message": "internal error"}}
    )
    with pytest.raises(RelayError) as caught:
        client.open_secrets(call, relay.send(call.body))
    assert (caught.value.code, caught.value.message) == (-32603, "internal error")


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        ({"id": "someone-else"}, "not"),
        ({"jsonrpc": "1.0"}, "JSON-RPC 2.0"),
        (
            {"result": {"secrets": [{"id": {"key": "OTHER", "namespace": "main"}}]}},
            "unexpected secret main/OTHER",
        ),
        (
            {"result": {"secrets": [{"id": {"key": "API_KEY", "namespace": "main"}}] * 2}},
            "duplicate secret main/API_KEY",
        ),
    ],
)
def test_an_answer_the_protocol_does_not_allow_is_refused(
    client: EnclaveClient, rewrite: dict[str, object], message: str
) -> None:
    """Another id, another version, a secret not asked for or given twice: AnswerError."""
    call = client.secrets_call([("", "API_KEY")])
    with pytest.raises(AnswerError, match=message):
        client.open_secrets(call, InProcessRelay(rewrite=rewrite).send(call.body))


def test_a_requested_secret_without_an_entry_is_that_secrets_error(client: EnclaveClient) -> None:
    """A missing entry is `secret missing from relay response`, the others still open."""
    call = client.secrets_call([("", "API_KEY"), ("main", "GONE")])
    api, gone = client.open_secrets(call, InProcessRelay(drop="GONE").send(call.body))
    assert (gone.key, gone.value, gone.error) == (
        "GONE",
        None,
        "secret missing from relay response",
    )
    assert (api.key, api.value, api.error) == ("API_KEY", b"s3cr3t", "")


KEYS = [signed.NodeKey(bytes([i + 1]) * 32) for i in range(4)]
CONFIG = enclave_config.for_don([k.public_key for k in KEYS], 1, b"mpk", 1)


class BundlingRelay(InProcessRelay):
    """Four current nodes behind a G3 gateway, three of them answering: each signs what it
    answers; the first `liars` each sign a different wrong ciphertext (with their own keys)."""

    def __init__(self, liars: int) -> None:
        super().__init__()
        self.liars = liars

    def send(self, body: bytes) -> bytes:
        request = json.loads(body)
        honest = json.loads(super().send(body))["result"]
        sent = current.decode_secrets_params(json.dumps(request["params"]).encode())
        good = current.decode_secrets_result(json.dumps(honest).encode())
        entries = [
            signed.sign_secrets(key, sent, self.lie(good, i) if i < self.liars else good)
            for i, key in enumerate(KEYS[:3])
        ]
        raw = current.encode_secrets_bundle(
            current.SignedSecretsResponseBundle(responses=tuple(entries))
        )
        return rpc.encode_response(id=request["id"], method=request["method"], result=raw)

    @staticmethod
    def lie(good: rpc.SecretsResponseResult, i: int) -> rpc.SecretsResponseResult:
        entries = tuple(
            msgspec.structs.replace(e, ciphertext=f"bGll{i}A==") for e in good.secrets or ()
        )
        return rpc.SecretsResponseResult(secrets=entries)


def current_client() -> EnclaveClient:
    return EnclaveClient(
        source=SimulatedSource(TestChain()),
        workflow_id="wf",
        owner=OWNER,
        execution_id="00" * 32,
        enclave_config=CONFIG,
    )


def test_under_current_the_client_picks_the_f_plus_1_signed_result_and_opens_it() -> None:
    """One liar of three signers: the two honest signatures win and the secret opens."""
    (secret,) = current_client().get_secrets(BundlingRelay(liars=1), [("", "API_KEY")])
    assert secret.value == b"s3cr3t"


def test_under_current_two_liars_leave_no_quorum_and_nothing_is_opened() -> None:
    """Two of three signers lie, each differently: no result has F+1 signers, no value."""
    with pytest.raises(NoQuorum, match="verifying secrets response: no relay-DON result"):
        current_client().get_secrets(BundlingRelay(liars=2), [("", "API_KEY")])
