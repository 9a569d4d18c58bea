"""Dispatch translation, deduplication, the reference crypto and the committed generated files."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import any_pb2

from schemas import bus, capability, rpc
from schemas.proto.gen import sdk_pb2, values_pb2, vault_pb2
from workers.dispatch import secrets as dispatch_secrets
from workers.dispatch.capability import response_payload
from workers.dispatch.common import deadline_for
from workers.dispatch.dedupe import Deduplicator, logical_key
from workers.reference import enclave_crypto
from workers.runtime.settings import NodeSettings

KEY = "aabbcc"


def vault_response(*secrets: vault_pb2.SecretResponse) -> vault_pb2.GetSecretsResponse:
    return vault_pb2.GetSecretsResponse(responses=list(secrets))


def secret(key: str = "API_KEY", **data: object) -> vault_pb2.SecretResponse:
    return vault_pb2.SecretResponse(
        id=vault_pb2.SecretIdentifier(key=key, namespace="main", owner="0xAb"),
        data=vault_pb2.SecretData(**data),  # type: ignore[arg-type]
    )


def test_hex_shares_for_the_enclave_key_become_base64_in_vault_order() -> None:
    """translateVaultResponse: hex -> base64, first matching share group, vault order kept."""
    shares = [
        vault_pb2.EncryptedShares(encryption_key="other", shares=["00"]),
        vault_pb2.EncryptedShares(encryption_key=KEY, shares=[b"share-1".hex()]),
        vault_pb2.EncryptedShares(encryption_key=KEY, shares=["ff"]),
    ]
    result = dispatch_secrets.translate_vault_response(
        vault_response(
            secret(
                "B",
                encrypted_value=b"encrypted-value".hex(),
                encrypted_decryption_key_shares=shares,
            ),
            secret("A", encrypted_value="00", encrypted_decryption_key_shares=shares),
        ),
        KEY,
    )
    assert isinstance(result, rpc.SecretsResponseResult)
    assert result.secrets is not None
    assert [s.id.key for s in result.secrets] == ["B", "A"]
    assert result.secrets[0].ciphertext == base64.b64encode(b"encrypted-value").decode()
    assert result.secrets[0].encrypted_shares == (base64.b64encode(b"share-1").decode(),)


def test_binary_shares_are_preferred_over_hex() -> None:
    """A share group with binary_shares gives base64 of the raw bytes."""
    group = vault_pb2.EncryptedShares(
        encryption_key=KEY, shares=["00"], binary_shares=[b"\x01\x02"]
    )
    result = dispatch_secrets.translate_vault_response(
        vault_response(secret(encrypted_value="00", encrypted_decryption_key_shares=[group])), KEY
    )
    assert isinstance(result, rpc.SecretsResponseResult)
    assert result.secrets is not None
    assert result.secrets[0].encrypted_shares == ("AQI=",)


def test_no_responses_encode_as_null_secrets() -> None:
    """An empty vault answer is Go's nil slice: {"secrets":null}."""
    result = dispatch_secrets.translate_vault_response(vault_response(), KEY)
    assert isinstance(result, rpc.SecretsResponseResult)
    assert rpc.encode_secrets_result(result) == b'{"secrets":null}'


@pytest.mark.parametrize(
    ("response", "detail"),
    [
        (
            vault_pb2.SecretResponse(
                id=vault_pb2.SecretIdentifier(key="K", namespace="n"), error="boom"
            ),
            "vault error for secret n/K: boom",
        ),
        (
            vault_pb2.SecretResponse(id=vault_pb2.SecretIdentifier(key="K", namespace="n")),
            "vault returned no data for secret n/K",
        ),
        (
            secret("K", encrypted_value="zz"),
            "failed to decode encrypted value for K: encoding/hex: invalid byte",
        ),
        (
            secret("K", encrypted_value="0", encrypted_decryption_key_shares=[]),
            "failed to decode encrypted value for K: encoding/hex: odd length hex string",
        ),
        (
            secret(
                "K",
                encrypted_value="00",
                encrypted_decryption_key_shares=[
                    vault_pb2.EncryptedShares(encryption_key=KEY, shares=["x"])
                ],
            ),
            "failed to decode share: ",
        ),
        (
            secret(
                "K",
                encrypted_value="00",
                encrypted_decryption_key_shares=[
                    vault_pb2.EncryptedShares(encryption_key="nope", shares=["00"])
                ],
            ),
            "no shares found for enclave key in secret main/K",
        ),
    ],
)
def test_every_vault_failure_is_an_internal_error_with_upstreams_detail(
    response: vault_pb2.SecretResponse, detail: str
) -> None:
    """Each row of the PROTOCOL 2.5 table, step 10."""
    result = dispatch_secrets.translate_vault_response(vault_response(response), KEY)
    assert isinstance(result, bus.StageError)
    assert result.code == -32603
    assert result.detail.startswith(detail)


def test_the_vault_request_keeps_order_normalises_the_owner_and_defaults_the_namespace() -> None:
    """EIP-55 owner in each id and at the top, `main` for an empty namespace, no dedupe."""
    params = rpc.SecretsRequestParams(
        owner="0xab5801a7d398351b8be11c439e05c5b3259aec9b",
        org_id="org-123",
        secrets=(
            rpc.SecretIdentifier(key="B"),
            rpc.SecretIdentifier(key="A", namespace="x"),
            rpc.SecretIdentifier(key="B"),
        ),
        enclave_public_key=KEY,
    )
    normal = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
    request = dispatch_secrets.build_vault_request(params, normal)
    assert [(r.id.key, r.id.namespace, r.id.owner) for r in request.requests] == [
        ("B", "main", normal),
        ("A", "x", normal),
        ("B", "main", normal),
    ]
    assert all(list(r.encryption_keys) == [KEY] for r in request.requests)
    assert (request.workflow_owner, request.org_id) == (normal, "org-123")


def test_capability_responses_serialise_identically_every_time() -> None:
    """An 8-key nested values map gives byte-identical results 50 times (deterministic marshal)."""
    value = values_pb2.Value()
    for i in range(8):
        field = value.map_value.fields[f"k{7 - i}"]
        if i % 2:
            field.map_value.fields["nested"].string_value = "x"
        else:
            field.list_value.fields.add().int64_value = i
    packed = any_pb2.Any()
    packed.Pack(value)
    outcome = capability.CapabilityOutcome(payload=packed.SerializeToString())
    first = response_payload(outcome)
    assert all(response_payload(outcome) == first for _ in range(50))
    decoded = sdk_pb2.CapabilityResponse.FromString(base64.b64decode(first))
    assert decoded.payload.type_url.endswith("values.v1.Value")


def test_an_empty_but_present_any_is_a_present_payload_as_in_go() -> None:
    """Go's non-nil empty Any is still field 1 of the response: bytes 0a 00, `CgA=`."""
    outcome = capability.CapabilityOutcome(payload=b"", payload_present=True)
    assert response_payload(outcome) == "CgA="


def test_an_empty_capability_answer_is_an_empty_payload() -> None:
    """No payload: an empty CapabilityResponse, "" in base64, omitted from the result."""
    assert response_payload(capability.CapabilityOutcome()) == ""
    assert rpc.encode_capability_result(rpc.CapabilityResponseResult()) == b"{}"


async def test_one_logical_call_runs_once_however_it_is_retried() -> None:
    """Concurrent duplicates wait for the first run; later retries get its stored outcome."""
    dedupe: Deduplicator[str] = Deduplicator(ttl_s=60)
    runs = 0

    async def work() -> str:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.05)
        return f"outcome-{runs}"

    key = logical_key("wf", "ex", "ref", "cap@1")
    results = await asyncio.gather(*(dedupe.run(key, work) for _ in range(5)))
    results.append(await dedupe.run(key, work))
    assert results == ["outcome-1"] * 6
    assert runs == 1


async def test_a_deduplicated_outcome_expires_after_its_ttl() -> None:
    """After the TTL the same key runs again (bounded memory)."""
    now = [0.0]
    dedupe: Deduplicator[int] = Deduplicator(ttl_s=10, clock=lambda: now[0])
    counter = iter(range(100))

    async def work() -> int:
        return next(counter)

    assert await dedupe.run("k", work) == 0
    now[0] = 5
    assert await dedupe.run("k", work) == 0
    now[0] = 20
    assert await dedupe.run("k", work) == 1


async def test_remembered_outcomes_stay_under_the_byte_bound_oldest_forgotten_first() -> None:
    """Four 40-byte outcomes under a 100-byte bound: only the newest stays, older ones run again."""
    dedupe: Deduplicator[bytes] = Deduplicator(ttl_s=60, max_bytes=100, size_of=len)
    runs: list[str] = []

    def work(key: str) -> Callable[[], Awaitable[bytes]]:
        async def run() -> bytes:
            runs.append(key)
            return key.encode() * 40

        return run

    for key in "abcd":
        await dedupe.run(key, work(key))
    # Each entry counts its 40 bytes plus the 32-byte key hash: one fits in 100.
    assert dedupe.remembered_bytes <= 100
    await dedupe.run("d", work("d"))
    await dedupe.run("a", work("a"))
    assert runs == ["a", "b", "c", "d", "a"]


async def test_a_key_of_a_megabyte_is_remembered_by_its_hash() -> None:
    """Client-sized key parts cost 32 bytes each in memory, and still deduplicate."""
    dedupe: Deduplicator[int] = Deduplicator(ttl_s=60, max_bytes=1000, size_of=lambda _: 0)
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        return runs

    key = logical_key("wf", "x" * 2**20, "ref", "cap@1")
    assert await dedupe.run(key, work) == await dedupe.run(key, work) == 1
    assert dedupe.remembered_bytes == 32


def test_keys_with_slashes_cannot_collide() -> None:
    """Parts are length-prefixed: ('a/b','c') and ('a','b/c') differ."""
    assert logical_key("a/b", "c", "r", "x") != logical_key("a", "b/c", "r", "x")


def _seal(value: bytes, public: bytes, **overrides: bytes) -> tuple[bytes, list[bytes]]:
    args = {"seed": b"s" * 32, "secret_id": b"0xO/main/K", "name": b"main/K", "reference": b"r"}
    args.update(overrides)
    return enclave_crypto.encrypt_secret(value, enclave_pub=public, **args)


def test_shares_open_only_with_the_enclave_key() -> None:
    """The reference scheme: the right key recovers the secret; another key cannot."""
    enclave = X25519PrivateKey.generate()
    ciphertext, shares = _seal(b"value", bytes.fromhex(enclave_crypto.public_hex(enclave)))
    bound = {"name": b"main/K", "reference": b"r"}
    assert enclave_crypto.decrypt_secret(ciphertext, shares, enclave, **bound) == b"value"
    with pytest.raises(enclave_crypto.DecryptionError):
        enclave_crypto.decrypt_secret(ciphertext, shares, X25519PrivateKey.generate(), **bound)
    with pytest.raises(enclave_crypto.DecryptionError):
        enclave_crypto.decrypt_secret(ciphertext, shares[:-1], enclave, **bound)


@pytest.mark.parametrize(
    "bound",
    [
        {"name": b"main/OTHER", "reference": b"r"},  # moved into another secret's slot
        {"name": b"main/K", "reference": b"r2"},  # replayed into another request
    ],
)
def test_a_ciphertext_and_its_shares_open_only_for_their_secret_and_request(
    bound: dict[str, bytes],
) -> None:
    """Both layers are bound to the secret's name and the reference id."""
    enclave = X25519PrivateKey.generate()
    ciphertext, shares = _seal(b"value", bytes.fromhex(enclave_crypto.public_hex(enclave)))
    with pytest.raises(enclave_crypto.DecryptionError):
        enclave_crypto.decrypt_secret(ciphertext, shares, enclave, **bound)


def test_an_enclave_that_opened_a_secret_once_cannot_open_the_next_request_or_value() -> None:
    """The data key is per request and value: a key learnt once (an enclave since revoked, say)
    opens neither another request's ciphertext of the same secret nor a rotated value."""
    old = X25519PrivateKey.generate()
    old_pub = bytes.fromhex(enclave_crypto.public_hex(old))
    ciphertext, shares = _seal(b"v1", old_pub)
    learnt = bytes(32)
    context = enclave_crypto._context(b"main/K", b"r")
    for index, sealed in enumerate(shares):
        share = enclave_crypto.open_share(sealed, old, context, index)
        learnt = bytes(a ^ b for a, b in zip(learnt, share, strict=True))
    assert AESGCM(learnt).decrypt(ciphertext[:12], ciphertext[12:], context) == b"v1"
    other = bytes.fromhex(enclave_crypto.public_hex(X25519PrivateKey.generate()))
    for later, later_context in (
        (_seal(b"v1", other, reference=b"r2")[0], enclave_crypto._context(b"main/K", b"r2")),
        (_seal(b"v2", other)[0], context),
    ):
        with pytest.raises(InvalidTag):
            AESGCM(learnt).decrypt(later[:12], later[12:], later_context)


def test_the_shares_of_one_secret_share_a_key_agreement_but_never_a_nonce() -> None:
    """One ephemeral key per secret (one X25519 exchange), each share under its own nonce."""
    public = bytes.fromhex(enclave_crypto.public_hex(X25519PrivateKey.generate()))
    _, shares = _seal(b"value", public)
    assert len({share[:32] for share in shares}) == 1
    assert len({share[32:44] for share in shares}) == len(shares) == enclave_crypto.SHARES


def test_the_vault_is_deterministic_per_request_so_honest_relays_agree() -> None:
    """Two relay nodes asking the same request get identical bytes."""
    public = bytes.fromhex(enclave_crypto.public_hex(X25519PrivateKey.generate()))
    assert _seal(b"v", public, reference=b"req-1") == _seal(b"v", public, reference=b"req-1")


def test_every_enclave_key_of_one_request_gets_the_same_ciphertext() -> None:
    """One ciphertext per secret in the vault's answer, one share group per key."""
    first = bytes.fromhex(enclave_crypto.public_hex(X25519PrivateKey.generate()))
    second = bytes.fromhex(enclave_crypto.public_hex(X25519PrivateKey.generate()))
    assert _seal(b"v", first)[0] == _seal(b"v", second)[0]


def test_committed_generated_protobuf_modules_are_up_to_date(tmp_path: Path) -> None:
    """Regenerating from the .proto files gives exactly the committed schemas/proto/gen."""
    from schemas.proto import build

    build.generate(tmp_path)
    committed = Path(build.__file__).parent / "gen"
    for fresh in tmp_path.glob("*_pb2.py*"):
        assert fresh.read_text() == (committed / fresh.name).read_text(), fresh.name


def test_committed_json_schemas_match_a_fresh_export() -> None:
    """schemas/jsonschema holds exactly what schemas.capability exports now."""
    for name, content in capability.json_schemas().items():
        assert (capability.SCHEMA_DIR / name).read_bytes() == content, name
    call = json.loads(capability.json_schemas()["capability-call.v1.json"])
    assert "CapabilityCall" in json.dumps(call)


@pytest.mark.parametrize(
    ("budget_ms", "expected_s"),
    [(250, 0.25), (0, 10.0), (60_000, 10.0)],
    ids=["the ingress's budget", "unknown: our own", "never more than our own"],
)
def test_a_dispatcher_stops_when_the_ingress_stops_waiting(
    budget_ms: int, expected_s: float
) -> None:
    """The deadline is the budget the ingress sent, capped by the dispatcher's request budget."""
    req = bus.DispatchRequest(
        request_id="r", method=rpc.MethodSecretsGet, params=msgspec.Raw(b"{}"), budget_ms=budget_ms
    )
    settings = NodeSettings(request_timeout_s=10.0)
    assert deadline_for(req, settings, received_at=100.0) == pytest.approx(100.0 + expected_s)
