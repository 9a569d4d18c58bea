"""The committed reference-vault vector is exactly what today's vault and relay produce.

`tests/unit/reference/test_vault_scheme_independent.py` opens that vector from the docs alone; this
test keeps the vector honest, so the independent client proves the shipped scheme, not an old one.
Regenerate with `python -m tests.unit.reference.test_vault_vector` after a deliberate scheme change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf import any_pb2

from schemas import capability, rpc
from schemas.proto.gen import vault_pb2
from workers.dispatch import secrets as dispatch_secrets
from workers.reference import enclave_crypto, vault

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "reference-vault" / "secrets-v2.json"
OWNER = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
# Fixed test values (public, like the example secrets): the vector must be reproducible.
SEED = bytes(range(32))
ENCLAVE_PRIVATE = bytes.fromhex("a8" * 32)
REQUEST_ID = "enclave-request-7"
VALUES = {("main", "API_KEY"): "s3cr3t-api-key", ("team", "DB_PASSWORD"): "correct horse"}


def build_vector() -> dict[str, Any]:
    """Run the reference vault and the relay's translation on a fixed request."""
    enclave = X25519PrivateKey.from_private_bytes(ENCLAVE_PRIVATE)
    public_hex = enclave_crypto.public_hex(enclave)
    store = vault.VaultStore(
        seed=SEED, values={(OWNER, ns, key): v.encode() for (ns, key), v in VALUES.items()}
    )
    request = vault_pb2.GetSecretsRequest(workflow_owner=OWNER)
    for namespace, key in VALUES:
        entry = request.requests.add()
        entry.id.owner, entry.id.namespace, entry.id.key = OWNER, namespace, key
        entry.encryption_keys.append(public_hex)
    wrapped = any_pb2.Any()
    wrapped.Pack(request)
    call = capability.CapabilityCall(
        capability_id=rpc.VaultCapabilityID,
        method=rpc.VaultMethodSecretsGet,
        payload=wrapped.SerializeToString(deterministic=True),
        metadata=capability.CallMetadata(reference_id=REQUEST_ID),
    )
    outcome = vault.answer(store, call)
    answer, response = any_pb2.Any(), vault_pb2.GetSecretsResponse()
    answer.ParseFromString(outcome.payload)
    answer.Unpack(response)
    result = dispatch_secrets.translate_vault_response(response, public_hex)
    assert isinstance(result, rpc.SecretsResponseResult)
    return {
        "comment": "Reference vault scheme v2 (docs/reference-vault.md); test values only.",
        "enclave_private_key_hex": ENCLAVE_PRIVATE.hex(),
        "enclave_public_key_hex": public_hex,
        "jsonrpc_id": REQUEST_ID,
        "result": json.loads(rpc.encode_secrets_result(result)),
        "plaintexts": {f"{ns}/{key}": value for (ns, key), value in VALUES.items()},
    }


def test_the_committed_vector_is_what_the_vault_and_relay_produce_today() -> None:
    """The vector file equals a fresh run of the reference vault and the relay's translation."""
    assert json.loads(VECTOR.read_text()) == build_vector()


if __name__ == "__main__":
    VECTOR.write_text(json.dumps(build_vector(), indent=2) + "\n")
