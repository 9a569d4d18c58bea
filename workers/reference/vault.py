"""A reference Vault DON worker for demos and tests: `relay worker vault`.

Secrets come from a JSON file: `{"seed_hex": "<32+ bytes hex>", "secrets": [{"owner": "0x…",
"namespace": "main", "key": "API_KEY", "value": "…"}]}`; owners are compared in EIP-55 form.
Each requested secret is answered in request order with its ciphertext and one share group per
requested encryption key (`workers.reference.enclave_crypto`); a missing one gets `key does not exist`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from nats.aio.client import Client

from schemas import capability, rpc, subjects
from schemas.proto.gen import vault_pb2
from workers.protocol import owner
from workers.reference import enclave_crypto
from workers.runtime.bus import Handler, Headers, Service

log = logging.getLogger("relay.vault")

MIN_SEED_BYTES = 32
MAX_SECRETS_PER_CALL = 64
"""The reference vault refuses larger batches (the relay's own bound is the same,
`workers/dispatch/secrets.py`): every answer must fit the server's max_payload."""
TOO_LARGE = "capability response too large"
"""The capability error a reference worker answers when its real answer would exceed the
server's max_payload: an answer at once, never silence until the caller's timeout."""
DEFAULT_SECRETS = Path(__file__).resolve().parents[2] / "deploy" / "vault-secrets.example.json"


@dataclass(frozen=True)
class VaultStore:
    seed: bytes
    values: dict[tuple[str, str, str], bytes]

    @classmethod
    def load(cls, path: Path) -> VaultStore:
        data = json.loads(path.read_bytes())
        values: dict[tuple[str, str, str], bytes] = {}
        for entry in data.get("secrets", []):
            key = (
                owner.to_checksum_address(entry["owner"]),
                entry.get("namespace") or rpc.VaultDefaultNamespace,
                entry["key"],
            )
            values[key] = entry["value"].encode("utf-8")
        if "seed_hex" in data:
            seed = bytes.fromhex(data["seed_hex"])
            if len(seed) < MIN_SEED_BYTES:
                # Every key and nonce is derived from it: a short seed makes them guessable.
                raise ValueError(
                    f"{path}: seed_hex is {len(seed)} bytes, at least {MIN_SEED_BYTES} are needed"
                )
        else:
            log.warning(
                "%s has no seed_hex: a random one for this process, so several vault replicas"
                " would answer the same request differently",
                path,
            )
            seed = os.urandom(MIN_SEED_BYTES)
        return cls(seed=seed, values=values)


def answer(store: VaultStore, call: capability.CapabilityCall) -> capability.CapabilityOutcome:
    wrapped = any_pb2.Any()
    request = vault_pb2.GetSecretsRequest()
    try:
        wrapped.ParseFromString(call.payload)
        if not wrapped.Unpack(request):
            return capability.CapabilityOutcome(error=f"unexpected payload {wrapped.type_url}")
    except DecodeError as exc:
        return capability.CapabilityOutcome(error=f"bad payload: {exc}")
    if len(request.requests) > MAX_SECRETS_PER_CALL:
        return capability.CapabilityOutcome(
            error=f"request batch size {len(request.requests)} exceeds {MAX_SECRETS_PER_CALL}"
        )
    response = vault_pb2.GetSecretsResponse()
    reference = call.metadata.reference_id.encode()
    for item in request.requests:
        out = response.responses.add()
        out.id.CopyFrom(item.id)
        value = store.values.get((item.id.owner, item.id.namespace, item.id.key))
        if value is None:
            out.error = "key does not exist"
            continue
        secret_id = f"{item.id.owner}/{item.id.namespace}/{item.id.key}".encode()
        name = f"{item.id.namespace}/{item.id.key}".encode()
        out.data.SetInParent()
        for key_hex in item.encryption_keys:
            try:
                enclave_pub = bytes.fromhex(key_hex)
                ciphertext, sealed = enclave_crypto.encrypt_secret(
                    value,
                    seed=store.seed,
                    secret_id=secret_id,
                    name=name,
                    enclave_pub=enclave_pub,
                    reference=reference,
                )
            except ValueError:
                out.ClearField("data")
                out.error = f"invalid encryption key {key_hex!r}"
                break
            out.data.encrypted_value = ciphertext.hex()
            group = out.data.encrypted_decryption_key_shares.add()
            group.encryption_key = key_hex
            group.shares.extend(s.hex() for s in sealed)
    packed = any_pb2.Any()
    packed.Pack(response)
    return capability.CapabilityOutcome(payload=packed.SerializeToString(deterministic=True))


async def serve_capability(
    nc: Client,
    *,
    capability_id: str,
    methods: tuple[str, ...],
    name: str,
    handler: Callable[[capability.CapabilityCall], capability.CapabilityOutcome],
) -> Service:
    """A reference capability as a micro service on `cap.v1.<capability>.<method>`."""

    async def serve(data: bytes, headers: Headers) -> bytes:
        try:
            call = capability.CALL_DECODER.decode(data)
            outcome = handler(call)
        except Exception as exc:  # a reference worker answers every call, never crashes
            log.warning("%s: bad call: %s", name, exc)
            outcome = capability.CapabilityOutcome(error="bad capability call")
        return capability.ENCODER.encode(outcome)

    return await capability_service(
        nc,
        capability_id=capability_id,
        methods=methods,
        name=name,
        description=f"reference {capability_id}",
        handler=serve,
    )


async def capability_service(
    nc: Client,
    *,
    capability_id: str,
    methods: tuple[str, ...],
    name: str,
    description: str,
    handler: Handler,
) -> Service:
    """A started micro service answering `handler` on `cap.v1.<capability>.<method>` for each
    method, in the capability queue group (reference workers and test DONs alike)."""
    svc = Service(nc, name=name, description=description)
    too_large = capability.ENCODER.encode(capability.CapabilityOutcome(error=TOO_LARGE))
    for method in methods:
        await svc.add_endpoint(
            name=subjects.encode_token(method),
            subject=subjects.capability(capability_id, method),
            queue=subjects.QUEUE_CAPABILITY,
            handler=handler,
            on_too_large=lambda data, headers: too_large,
        )
    await svc.start()
    return svc


SECRETS_ENV = "RELAY_VAULT_SECRETS"
"""The reference vault's secrets file for `relay worker vault` (default: the public example)."""


def secrets_file_from_env() -> Path:
    raw = os.environ.get(SECRETS_ENV, "")
    return Path(raw) if raw else DEFAULT_SECRETS


async def run(nc: Client, secrets_file: Path = DEFAULT_SECRETS) -> Service:
    store = VaultStore.load(secrets_file)
    log.info("reference vault serving %d secrets", len(store.values))  # counts only, never values
    if os.path.samefile(secrets_file, DEFAULT_SECRETS):  # noqa: ASYNC240 (start-up, once)
        log.warning(
            "reference vault: serving the EXAMPLE secrets of %s, whose values and key seed are"
            " public; set %s to a file of your own",
            DEFAULT_SECRETS.name,
            SECRETS_ENV,
        )
    return await serve_capability(
        nc,
        capability_id=rpc.VaultCapabilityID,
        methods=(rpc.VaultMethodSecretsGet,),
        name="relay-ref-vault",
        handler=lambda call: answer(store, call),
    )
