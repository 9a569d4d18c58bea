"""G3 with real nodes: four signing nodes of the playground (every actor its own NATS user), the
G3 gateway, the enclave client as `enclave`; one node's ingress at a time is replaced by its
malicious operator (the `ingress` user, the node's own key) who lies, forges, garbles or stays
silent. Each forwarding rule and error text, and what the enclave then picks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from nats.aio.msg import Msg

from schemas import current, rpc, subjects
from workers.attestation.testchain import fake_pcrs
from workers.enclave import bundle as picking
from workers.enclave import nats_transport
from workers.enclave.attest import SimulatedSource
from workers.enclave.client import CapabilityCall, EnclaveClient
from workers.gateway.actor import NODE_HEADER
from workers.node.playground import LocalRelay, local_relay
from workers.protocol import signed
from workers.runtime import credentials
from workers.runtime.bus import connect

pytestmark = pytest.mark.asyncio(loop_scope="module")

OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"
HI = b"\n\x02hi"
GRACE_S, TIMEOUT_S = 1.0, 5.0
Act = Callable[[dict[str, Any]], Awaitable[bytes | None]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay() -> AsyncIterator[LocalRelay]:
    async with local_relay(
        protocol="current", quorum_grace_s=GRACE_S, request_timeout_s=TIMEOUT_S
    ) as started:
        yield started


@asynccontextmanager
async def impostors(relay: LocalRelay, acts: Mapping[str, Act]) -> AsyncIterator[None]:
    """Each named node's real ingress stopped and its operator answering `act` in its place
    (None: no answer at all); the real ingresses restored afterwards."""
    connections = []
    try:
        for node, act in acts.items():
            await relay.ingresses[node].stop()
            # That node's operator's own credentials: each node's rpc is in its own account.
            user, password = credentials.credentials_for("ingress", node)
            nc = await connect(relay.nats_url, actor="ingress", user=user, password=password)
            connections.append(nc)

            async def answer(msg: Msg, node: str = node, act: Act = act, nc: Any = nc) -> None:
                request = json.loads(msg.data)
                result = await act(request)
                if result is not None:
                    body = rpc.encode_response(
                        id=request["id"], method=request["method"], result=result
                    )
                    await nc.publish(msg.reply, body, headers={NODE_HEADER: node})

            await nc.subscribe(
                subjects.rpc(relay.don, node), queue=subjects.QUEUE_INGRESS, cb=answer
            )
            await nc.flush()
        yield
    finally:
        for nc in connections:
            await nc.close()
        for node in acts:
            await relay.ingresses[node].start()


def params_of(request: dict[str, Any]) -> current.CapabilityRequestParams:
    return current.decode_capability_params(json.dumps(request["params"]).encode())


def signs(
    key: signed.NodeKey,
    result: rpc.CapabilityResponseResult,
    tamper: Callable[[dict[str, Any]], None] | None = None,
) -> Act:
    async def act(request: dict[str, Any]) -> bytes:
        body = json.loads(
            signed.sign_result_json(key, request["method"], params_of(request), result)
        )
        if tamper is not None:
            tamper(body)
        return json.dumps(body).encode()

    return act


async def silent(request: dict[str, Any]) -> None:
    return None


WRONG = rpc.CapabilityResponseResult(payload=base64.b64encode(b"\x0a\x00").decode())


async def ask(
    relay: LocalRelay, *, pcrs: dict[int, bytes] | None = None
) -> tuple[CapabilityCall, EnclaveClient, dict[str, Any], float]:
    client = EnclaveClient(
        source=SimulatedSource(relay.source.chain, pcrs),
        workflow_id="wf-g3",
        owner=OWNER,
        execution_id=os.urandom(32).hex(),
        enclave_config=relay.enclave_config,
    )
    call = client.capability_call("echo@1.0.0", "echo", type_url=STRING_VALUE, value=HI)
    user, password = credentials.credentials_for("enclave")
    nc = await nats_transport.connect(relay.nats_url, user=user, password=password)
    try:
        started = asyncio.get_running_loop().time()
        body = await nats_transport.NatsTransport(nc, relay.don, timeout_s=15).send(call.body)
        waited = asyncio.get_running_loop().time() - started
    finally:
        await nc.close()
    return call, client, json.loads(body), waited


def pick(call: CapabilityCall, answer: dict[str, Any]) -> picking.Selection:
    params = call.prepared.params
    assert isinstance(params, current.CapabilityRequestParams)
    entries = picking.decode_bundle(rpc.MethodCapabilityExec, json.dumps(answer["result"]).encode())
    return picking.select(rpc.MethodCapabilityExec, params, entries)


def short(body: dict[str, Any]) -> None:
    body["signature"]["signature"] = base64.b64encode(b"\x01" * 10).decode()


def claims_node_0(relay: LocalRelay) -> Callable[[dict[str, Any]], None]:
    def claim(body: dict[str, Any]) -> None:
        body["signature"]["signer"] = base64.b64encode(relay.keys["node-0"].public_key).decode()

    return claim


@pytest.mark.parametrize("fault", ["wrong-result", "forged", "short-signature"])
async def test_one_faulty_node_is_bundled_and_the_enclave_picks_the_honest_result(
    relay: LocalRelay, fault: str
) -> None:
    """node-3 answers at once, faultily; with two real nodes it makes the 2F+1 bundle, and the
    enclave's pick is the real echo, signed by two real nodes, never by node-3's entry."""
    act = {
        "wrong-result": signs(relay.keys["node-3"], WRONG),
        "forged": signs(signed.NodeKey(os.urandom(32)), WRONG, claims_node_0(relay)),
        "short-signature": signs(relay.keys["node-3"], WRONG, short),
    }[fault]
    async with impostors(relay, {"node-3": act}):
        call, client, answer, _ = await ask(relay)
    responses = answer["result"]["responses"]
    assert len(responses) == 3
    chosen = pick(call, answer)
    assert chosen.signers == 2
    assert relay.keys["node-3"].public_key not in chosen.signer_keys
    assert client.open_capability(call, json.dumps(answer).encode()).value == HI


async def test_a_silent_node_is_not_waited_for_once_three_real_nodes_signed(
    relay: LocalRelay,
) -> None:
    """node-3 takes the request and never answers: the three real answers go out at once, not at
    expiry."""
    async with impostors(relay, {"node-3": silent}):
        call, _, answer, waited = await ask(relay)
    assert pick(call, answer).signers == 3
    assert waited < TIMEOUT_S


async def test_two_silent_nodes_leave_two_real_answers_forwarded_after_the_grace(
    relay: LocalRelay,
) -> None:
    """F+1 real signed answers and two silent nodes: forwarded once the 1 s grace is over."""
    async with impostors(relay, {"node-2": silent, "node-3": silent}):
        call, _, answer, waited = await ask(relay)
    assert len(answer["result"]["responses"]) == 2
    assert pick(call, answer).signers == 2
    assert GRACE_S <= waited < TIMEOUT_S


async def test_three_silent_nodes_end_in_upstreams_timeout_text(relay: LocalRelay) -> None:
    """One real signed answer: at expiry -32000 with every count."""
    quiet = dict.fromkeys(("node-1", "node-2", "node-3"), silent)
    async with impostors(relay, quiet):
        _, _, answer, _ = await ask(relay)
    assert answer["error"]["code"] == -32000
    assert answer["error"]["message"] == (
        "request expired: 1 signed relay responses, need at least 2 to reach quorum"
        " (collected=1 nodes=4 unanswered=3 errors=0 undecodable=0)"
    )


async def test_real_nodes_refusing_an_untrusted_image_make_quorum_unreachable(
    relay: LocalRelay,
) -> None:
    """Every real node answers -32603 for an unknown enclave image: after three, no signed answer
    can reach F+1, and the gateway says so at once with upstream's text."""
    _, _, answer, waited = await ask(relay, pcrs=fake_pcrs("unknown-image"))
    assert answer["error"]["code"] == -32603
    assert answer["error"]["message"] == (
        "relay quorum unreachable: 0 signed responses, at most 1 possible, need 2 (collected=3"
        " nodes=4 remaining=1 errors=3 undecodable=0)"
    )
    assert waited < TIMEOUT_S
