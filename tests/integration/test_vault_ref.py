"""The reference vault: its secrets file (chosen by RELAY_VAULT_SECRETS, the public example
flagged), its batch bound and its answer to a batch too large to publish."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2
from nats.aio.client import Client

from schemas import capability, rpc, subjects
from schemas.proto.gen import vault_pb2
from workers.reference import enclave_crypto
from workers.reference import vault as vault_ref
from workers.runtime.bus import connect, request
from workers.runtime.natsserver import NatsServer

OWNER = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 form, as dispatch sends it


def call_for(keys: list[str], enclave_hex: str) -> capability.CapabilityCall:
    request = vault_pb2.GetSecretsRequest()
    for key in keys:
        item = request.requests.add()
        item.id.owner, item.id.namespace, item.id.key = OWNER, "main", key
        item.encryption_keys.append(enclave_hex)
    packed = any_pb2.Any()
    packed.Pack(request)
    return capability.CapabilityCall(
        capability_id=rpc.VaultCapabilityID,
        method=rpc.VaultMethodSecretsGet,
        payload=packed.SerializeToString(),
        metadata=capability.CallMetadata(reference_id="ref-1"),
    )


def test_relay_vault_secrets_names_the_file_and_unset_means_the_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The environment variable wins; without it (or empty) the example file is served."""
    monkeypatch.delenv(vault_ref.SECRETS_ENV, raising=False)
    assert vault_ref.secrets_file_from_env() == vault_ref.DEFAULT_SECRETS
    monkeypatch.setenv(vault_ref.SECRETS_ENV, "")
    assert vault_ref.secrets_file_from_env() == vault_ref.DEFAULT_SECRETS
    monkeypatch.setenv(vault_ref.SECRETS_ENV, str(tmp_path / "mine.json"))
    assert vault_ref.secrets_file_from_env() == tmp_path / "mine.json"


def test_a_secret_of_the_configured_file_is_served_and_another_does_not_exist(
    tmp_path: Path,
) -> None:
    """Only the file's own secrets exist; the answer is sealed to the requesting enclave key."""
    path = tmp_path / "secrets.json"
    entry = {"owner": OWNER.lower(), "namespace": "main", "key": "TOKEN", "value": "v-42"}
    path.write_text(json.dumps({"seed_hex": "11" * 32, "secrets": [entry]}))
    enclave = enclave_crypto.public_hex(X25519PrivateKey.generate())
    outcome = vault_ref.answer(
        vault_ref.VaultStore.load(path), call_for(["TOKEN", "API_KEY"], enclave)
    )
    packed = any_pb2.Any.FromString(outcome.payload)
    response = vault_pb2.GetSecretsResponse()
    assert packed.Unpack(response)
    served, missing = response.responses
    assert served.data.encrypted_value
    assert not served.error
    assert [g.encryption_key for g in served.data.encrypted_decryption_key_shares] == [enclave]
    assert b"v-42" not in outcome.payload
    assert missing.error == "key does not exist"


async def test_serving_the_public_example_file_logs_a_warning(
    nc: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The example's values and seed are public: starting on it says so, naming the variable."""
    caplog.set_level(logging.WARNING, logger="relay.vault")
    svc = await vault_ref.run(nc)
    try:
        assert any(vault_ref.SECRETS_ENV in r.getMessage() for r in caplog.records)
    finally:
        await svc.stop()


@pytest.mark.parametrize("seed_hex", ["", "00", "11" * 31])
def test_a_seed_shorter_than_32_bytes_is_refused(tmp_path: Path, seed_hex: str) -> None:
    """Every key and nonce of the scheme comes from the seed: an empty or short one is refused."""
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"seed_hex": seed_hex, "secrets": []}))
    with pytest.raises(ValueError, match="at least 32 are needed"):
        vault_ref.VaultStore.load(path)


def test_the_reference_vault_refuses_a_batch_over_the_bound() -> None:
    """65 secrets in one call: the reference vault answers an error, not a 65-entry answer."""
    store = vault_ref.VaultStore(seed=b"\x11" * 32, values={})
    enclave = enclave_crypto.public_hex(X25519PrivateKey.generate())
    keys = ["K"] * (vault_ref.MAX_SECRETS_PER_CALL + 1)
    outcome = vault_ref.answer(store, call_for(keys, enclave))
    assert outcome.error.startswith("request batch size 65 exceeds 64"), outcome
    assert not outcome.payload


async def test_the_reference_vault_answers_a_too_large_batch_with_an_error_at_once(
    nats_server: NatsServer, nc: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """64 copies of a 20 KB secret exceed max_payload: the vault answers its error promptly."""
    path = tmp_path / "secrets.json"
    entry = {"owner": OWNER.lower(), "namespace": "main", "key": "BIG", "value": "v" * 20_000}
    path.write_text(json.dumps({"seed_hex": "11" * 32, "secrets": [entry]}))
    vault_nc = await connect(nats_server.url, actor="vault")
    svc = await vault_ref.run(vault_nc, path)
    try:
        enclave = enclave_crypto.public_hex(X25519PrivateKey.generate())
        call = call_for(["BIG"] * vault_ref.MAX_SECRETS_PER_CALL, enclave)
        caplog.set_level(logging.ERROR, logger="relay.bus")
        started = time.monotonic()
        data = await request(
            nc,
            subjects.capability(rpc.VaultCapabilityID, rpc.VaultMethodSecretsGet),
            capability.ENCODER.encode(call),
            timeout_s=5.0,
        )
        assert time.monotonic() - started < 2.0
        assert capability.OUTCOME_DECODER.decode(data).error == vault_ref.TOO_LARGE
        assert any("max_payload" in r.getMessage() for r in caplog.records)
    finally:
        await svc.stop()
