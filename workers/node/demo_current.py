"""`relay demo --protocol current`: the current protocol's story, on this machine only.

Four relay nodes (F = 1) under `RELAY_PROTOCOL=current`, each signing its answers with its own
key; the G3 gateway forwarding bundles of signed answers; an enclave (`workers.enclave`, with a
simulated attestation chain and a simulated Workflow DON) that picks the result F+1 of its
configured signers signed. Then node-3's operator turns malicious: it signs a wrong result with
its own key (outvoted), then sends a signature forged with a key outside the DON (ignored).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from schemas import current, rpc, subjects
from workers.enclave import bundle as picking
from workers.enclave import pb
from workers.enclave.client import EnclaveClient
from workers.enclave.errors import EnclaveClientError
from workers.enclave.http import HttpTransport
from workers.gateway.actor import NODE_HEADER
from workers.node.demo import DON, NODES, OWNER, Say
from workers.node.playground import LocalRelay, local_relay
from workers.protocol import signed
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for

STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
BYZANTINE = "node-3"
WORKFLOW_ID = "wf-demo"
EXECUTION_ID = "00" * 31 + "02"


def string_value(text: str) -> bytes:
    """google.protobuf.StringValue{value: text} (field 1, length-delimited)."""
    raw = text.encode()
    return bytes([0x0A, len(raw)]) + raw


class Byzantine:
    """Node-3's malicious operator: answers in its node's place (its own NATS user and, for the
    wrong result, its own key) without running any check."""

    def __init__(self, nc: Client, sign: Callable[[dict[str, Any]], bytes]) -> None:
        self._nc = nc
        self._sign = sign
        self.answered = 0

    async def start(self) -> None:
        await self._nc.subscribe(
            subjects.rpc(DON, BYZANTINE), queue=subjects.QUEUE_INGRESS, cb=self._answer
        )
        await self._nc.flush()

    async def _answer(self, msg: Msg) -> None:
        request = json.loads(msg.data)
        body = rpc.encode_response(
            id=request["id"], method=request["method"], result=self._sign(request)
        )
        self.answered += 1
        await self._nc.publish(msg.reply, body, headers={NODE_HEADER: BYZANTINE})


def _wrong_result(key: signed.NodeKey) -> Callable[[dict[str, Any]], bytes]:
    """Signs, with the node's real key, an echo answer the capability never gave."""

    def sign(request: dict[str, Any]) -> bytes:
        params = current.decode_capability_params(json.dumps(request["params"]).encode())
        forged = _echo_payload("a wrong result, signed by node-3")
        result = rpc.CapabilityResponseResult(payload=forged)
        return signed.sign_result_json(key, request["method"], params, result)

    return sign


def _forged_signature(claimed: bytes) -> Callable[[dict[str, Any]], bytes]:
    """Signs with a key outside the DON, claiming another member's signer."""
    outsider = signed.NodeKey(os.urandom(32))

    def sign(request: dict[str, Any]) -> bytes:
        params = current.decode_capability_params(json.dumps(request["params"]).encode())
        result = rpc.CapabilityResponseResult(payload=_echo_payload("forged"))
        signed_result = signed.sign_capability(outsider, params, result)
        claim = current.RelayResponseSignature(
            signer=claimed, signature=signed_result.signature.signature
        )
        return current.encode_signed_capability_result(
            current.SignedCapabilityResponseResult(
                result=result, signatures=(claim,), signature=claim
            )
        )

    return sign


def _echo_payload(text: str) -> str:
    inner = pb.len_field(1, STRING_VALUE.encode()) + pb.len_field(2, string_value(text))
    return base64.b64encode(pb.len_field(1, inner)).decode()


async def run_demo_current(say: Say) -> bool:
    """Run every step; True when each behaved as it should."""
    started = time.monotonic()
    ok = True
    async with local_relay(protocol="current", nodes=len(NODES), f=1) as relay:
        say(
            f"1. a local relay DON on {relay.nats_url}: 4 nodes (F=1) under"
            " RELAY_PROTOCOL=current, each signing with its own Ed25519 key (0600 files), their"
            " peer ids and a Workflow DON of 4 keys in the registry, reference vault and echo"
        )
        say(f"2. G3 gateway, HTTP front {relay.url}: it forwards bundles of signed answers")
        keys = relay.keys
        config = relay.enclave_config
        enclave = Enclave(
            client=EnclaveClient(
                source=relay.source,
                workflow_id=WORKFLOW_ID,
                owner=OWNER,
                execution_id=EXECUTION_ID,
                enclave_config=config,
            ),
            http=HttpTransport(relay.url, timeout_s=15),
            names={keys[n].public_key: n for n in NODES},
        )
        say(
            "3. the enclave (simulated attestation) holds its config: the 4 nodes' peer ids, F=1:"
            " it needs 2 valid distinct signatures on one result"
        )
        ok &= await _step_secret(say, enclave, relay)
        ok &= await _step_echo(say, enclave, "5", "an honest DON", lambda v: v == Verdict())

        await relay.ingresses[BYZANTINE].stop()
        # The liar holds its own operator's credentials, nothing more (docs/deployment.md).
        user, password = credentials_for("ingress", BYZANTINE)
        nc = await connect(relay.nats_url, actor="ingress", user=user, password=password)
        try:
            liar = Byzantine(nc, _wrong_result(keys[BYZANTINE]))
            await liar.start()
            say(f"6. {BYZANTINE}'s operator turns malicious: it signs a WRONG result with its key")
            ok &= await _step_echo(say, enclave, "6b", "node-3 lies", lambda v: v.outvoted == 1)
            ok &= _answered(say, liar)
        finally:
            await nc.close()
        nc = await connect(relay.nats_url, actor="ingress", user=user, password=password)
        try:
            forger = Byzantine(nc, _forged_signature(keys["node-0"].public_key))
            await forger.start()
            say(f"7. {BYZANTINE} now FORGES a signature: a key outside the DON, claiming node-0")
            ok &= await _step_echo(say, enclave, "7b", "node-3 forges", lambda v: v.refused == 1)
            ok &= _answered(say, forger)
        finally:
            await nc.close()
    say(
        f"done in {time.monotonic() - started:.1f}s: everything started was stopped "
        f"({'all steps behaved as expected' if ok else 'SOME STEP FAILED'})"
    )
    return ok


def _answered(say: Say, byzantine: Byzantine) -> bool:
    if byzantine.answered:
        return True
    say(f"   UNEXPECTED: {BYZANTINE} was never asked")
    return False


@dataclass
class Enclave:
    client: EnclaveClient
    http: HttpTransport
    names: dict[bytes, str]
    """peer id -> node name, for the account only (the pick never reads names or claims)."""


@dataclass
class Verdict:
    refused: int = 0
    outvoted: int = 0


async def _step_secret(say: Say, enclave: Enclave, relay: LocalRelay) -> bool:
    authorization = relay.authorize(
        workflow_id=WORKFLOW_ID, owner=OWNER, execution_id=EXECUTION_ID, secret_keys=["API_KEY"]
    )
    call = enclave.client.secrets_call([("main", "API_KEY")], signed_compute_requests=authorization)
    say(
        f"4. enclave -> confidential.secrets.get API_KEY (id {call.prepared.id}; attested,"
        " DomainHash v2, with 2 Workflow-DON signatures on its compute request)"
    )
    answer = await asyncio.to_thread(enclave.http.send, call.body)
    if _describe(say, enclave, rpc.MethodSecretsGet, call.prepared.params, answer) is None:
        return False
    try:
        (secret,) = enclave.client.open_secrets(call, answer)
    except EnclaveClientError as exc:
        say(f"   UNEXPECTED: {exc}")
        return False
    say(
        f"   the enclave opened the shares with its per-call key: API_KEY = {(secret.value or b'').decode()!r}"
    )
    return secret.value is not None


async def _step_echo(
    say: Say, enclave: Enclave, step: str, what: str, expect: Callable[[Verdict], bool]
) -> bool:
    text = "hello from the enclave"
    call = enclave.client.capability_call(
        "echo@1.0.0", "echo", type_url=STRING_VALUE, value=string_value(text)
    )
    say(f"{step}. enclave -> capability.execute echo '{text}' ({what}; id {call.prepared.id})")
    answer = await asyncio.to_thread(enclave.http.send, call.body)
    verdict = _describe(say, enclave, rpc.MethodCapabilityExec, call.prepared.params, answer)
    if verdict is None:
        return False
    try:
        response = enclave.client.open_capability(call, answer)
    except EnclaveClientError as exc:
        say(f"   UNEXPECTED: {exc}")
        return False
    say(f"   picked result: echo answered {response.value[2:].decode(errors='replace')!r}")
    if not expect(verdict):
        say(f"   UNEXPECTED: the bundle did not hold what this step is about ({verdict})")
        return False
    return response.value == string_value(text)


def _describe(
    say: Say, enclave: Enclave, method: str, params: object, answer: bytes
) -> Verdict | None:
    """Show the bundle as the enclave judges it (the same rule as `bundle.select`)."""
    envelope = json.loads(answer)
    if "error" in envelope:
        say(f"   UNEXPECTED gateway error: {envelope['error']}")
        return None
    if not isinstance(params, current.SecretsRequestParams | current.CapabilityRequestParams):
        raise TypeError("the demo speaks the current protocol only")
    entries = picking.decode_bundle(method, json.dumps(envelope["result"]).encode())
    try:
        chosen = picking.select(method, params, entries)
    except EnclaveClientError as exc:
        say(f"   UNEXPECTED: {exc}")
        return None
    keys = list(enclave.names)
    verdict = Verdict()
    lines = []
    for entry in entries:
        claimed = enclave.names.get(entry.signature.signer or b"", "an unknown key")
        digest = signed.response_hash(method, params, entry.result)
        payload = signed.relay_payload(digest)
        who = signed.find_signer(keys, payload, entry.signature.signature or b"")
        if who is None:
            verdict.refused += 1
            lines.append(f"claims {claimed}: INVALID, not from any allowed signer")
        elif digest != chosen.hash:
            verdict.outvoted += 1
            lines.append(f"{enclave.names[keys[who]]}: valid, on another result {digest.hex()[:8]}")
        else:
            lines.append(f"{enclave.names[keys[who]]}: valid on {digest.hex()[:8]}")
    say(f"   the gateway's bundle of {len(entries)} signed answers: " + "; ".join(lines))
    say(
        f"   the enclave picks result {chosen.hash.hex()[:8]}: {chosen.signers} valid distinct"
        f" signers ({', '.join(sorted(enclave.names[k] for k in chosen.signer_keys))}), F+1 = 2 needed"
    )
    return verdict
