"""`relay gateway --protocol current` (G3, PROTOCOL 10.10) on a real nats-server with node-like
responders that sign as current nodes do (workers.protocol.signed), honest or not.

Each scenario has at most F faulty nodes (F=1 of 4). What the gateway forwards is then picked as
the enclave does (workers.enclave.bundle, 10.6): the gateway keeps every signed answer (it checks
no signature); the enclave ignores the forged, malformed and wrong ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from nats.aio.msg import Msg

from schemas import current, rpc
from tests.integration.gateway_fakes import (
    GENEROUS,
    Behaviour,
    FakeNode,
    delayed,
    fake_don,
    response,
    running_gateway,
    silent,
    unique_don,
)
from workers.enclave import bundle as picking
from workers.enclave.errors import NoQuorum
from workers.gateway.errors import ErrorCode
from workers.gateway.handler import HandlerConfig
from workers.protocol import enclave_config, signed
from workers.runtime.natsserver import NatsServer

MEMBERS = ("node-0", "node-1", "node-2", "node-3")
KEYS = {m: signed.NodeKey(bytes([i + 1]) * 32) for i, m in enumerate(MEMBERS)}
CONFIG = enclave_config.for_don([k.public_key for k in KEYS.values()], 1, b"mpk", 1)
OWNER = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
HONEST = rpc.CapabilityResponseResult(payload="aG9uZXN0")
WRONG = rpc.CapabilityResponseResult(payload="d3Jvbmc=")
STEP_S = 0.05  # how much later the honest nodes answer when a faulty one must come first


def params() -> current.CapabilityRequestParams:
    return current.CapabilityRequestParams(
        workflow_id="wf",
        owner=OWNER,
        execution_id="00" * 32,
        reference_id="1",
        capability_id="echo@1.0.0",
        payload="AA==",
        enclave_config=CONFIG,
    )


def request_body(request_id: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": rpc.MethodCapabilityExec,
            "params": json.loads(current.encode_capability_params(params())),
        }
    ).encode()


def signing(
    result: rpc.CapabilityResponseResult = HONEST,
    *,
    key: signed.NodeKey | None = None,
    tamper: Callable[[dict[str, Any]], None] | None = None,
) -> Behaviour:
    """A node that signs `result` for the request's own params (with its key, or `key`)."""

    async def act(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        sent = current.decode_capability_params(json.dumps(request["params"]).encode())
        answer = json.loads(
            signed.sign_result_json(key or KEYS[node.address], request["method"], sent, result)
        )
        if tamper is not None:
            tamper(answer)
        await node.answer(msg, response(request, answer))

    return act


def errors(message: str = "internal error") -> Behaviour:
    async def act(node: FakeNode, msg: Msg, request: dict[str, Any]) -> None:
        body = {"jsonrpc": "2.0", "id": request["id"], "method": request["method"],
                "error": {"code": -32603, "message": message}}  # fmt: skip
        await node.answer(msg, json.dumps(body).encode())

    return act


def forged_by(member: str) -> Behaviour:
    """Signs the honest result with a key outside the DON, claiming `member`'s signer."""

    def claim(answer: dict[str, Any]) -> None:
        answer["signature"]["signer"] = base64.b64encode(KEYS[member].public_key).decode()

    return signing(key=signed.NodeKey(os.urandom(32)), tamper=claim)


def short_signature(answer: dict[str, Any]) -> None:
    answer["signature"]["signature"] = base64.b64encode(b"\x01" * 10).decode()


def not_base64(answer: dict[str, Any]) -> None:
    answer["signature"]["signature"] = "%%%"


def config(**overrides: Any) -> HandlerConfig:
    fields: dict[str, Any] = {
        "global_rate": GENEROUS,
        "per_node_rate": GENEROUS,
        "protocol": "current",
        "request_timeout_s": 5.0,
        "quorum_grace_s": 5.0,
        **overrides,
    }
    return HandlerConfig(**fields)


async def ask(
    server: NatsServer,
    behaviours: Mapping[str, Behaviour | None],
    *,
    handler: HandlerConfig | None = None,
    sweep_s: float = 0.1,
) -> tuple[ErrorCode, dict[str, Any]]:
    don = unique_don()
    async with (
        fake_don(server.url, don, behaviours),
        running_gateway(
            server.url, don, MEMBERS, config=handler or config(), sweep_interval_s=sweep_s
        ) as gateway,
    ):
        reply = await asyncio.wait_for(gateway.serve(request_body("g3-1")), 10)
    answer: dict[str, Any] = json.loads(reply.body)
    return reply.code, answer


def pick(answer: dict[str, Any]) -> picking.Selection:
    raw = json.dumps(answer["result"]).encode()
    entries = picking.decode_bundle(rpc.MethodCapabilityExec, raw)
    return picking.select(rpc.MethodCapabilityExec, params(), entries)


def honest_after(delay_s: float = STEP_S) -> Behaviour:
    return delayed(delay_s, signing())


@pytest.mark.parametrize(
    ("faulty", "why"),
    [
        (signing(WRONG), "signs a wrong result with its own key"),
        (forged_by("node-1"), "forges a signature claiming another member"),
        (signing(tamper=short_signature), "sends a 10-byte signature"),
    ],
    ids=["wrong-result", "forged", "short-signature"],
)
async def test_one_faulty_signer_is_forwarded_and_outvoted_by_the_enclaves_pick(
    nats_server: NatsServer, faulty: Behaviour, why: str
) -> None:
    """The faulty node answers first; at 2F+1 signed the bundle goes out, and the honest result
    wins the enclave's pick with two distinct valid signers."""
    behaviours = {"node-0": faulty, **{m: honest_after() for m in MEMBERS[1:]}}
    code, answer = await ask(nats_server, behaviours)
    assert code is ErrorCode.NoError, why
    assert (answer["id"], answer["method"]) == ("g3-1", rpc.MethodCapabilityExec)
    assert len(answer["result"]["responses"]) == 3  # 2F+1 signed, the fourth not waited for
    chosen = pick(answer)
    assert chosen.result == HONEST
    assert chosen.signers == 2
    assert KEYS["node-0"].public_key not in chosen.signer_keys


async def test_a_signature_that_is_not_base64_is_undecodable_and_left_out(
    nats_server: NatsServer,
) -> None:
    """Go cannot decode it into the signed type: not bundled; three honest answers are."""
    behaviours = {
        "node-0": signing(tamper=not_base64),
        **{m: honest_after() for m in MEMBERS[1:]},
    }
    code, answer = await ask(nats_server, behaviours)
    assert code is ErrorCode.NoError
    responses = answer["result"]["responses"]
    assert len(responses) == 3
    assert "%%%" not in json.dumps(responses)
    assert pick(answer).signers == 3


async def test_a_node_that_never_answers_is_not_waited_for_once_2f_plus_1_signed(
    nats_server: NatsServer,
) -> None:
    """Three honest signers and one silent node: forwarded at once, well inside the grace."""
    behaviours = {"node-0": silent, **{m: signing() for m in MEMBERS[1:]}}
    started = asyncio.get_running_loop().time()
    code, answer = await ask(nats_server, behaviours, handler=config(quorum_grace_s=30.0))
    assert code is ErrorCode.NoError
    assert asyncio.get_running_loop().time() - started < 5
    assert pick(answer).signers == 3


async def test_f_plus_1_signed_with_two_silent_nodes_is_forwarded_when_the_grace_is_over(
    nats_server: NatsServer,
) -> None:
    """Two signed, two silent: the gateway waits the grace window, then forwards the two."""
    behaviours = {"node-0": silent, "node-1": silent, "node-2": signing(), "node-3": signing()}
    started = asyncio.get_running_loop().time()
    code, answer = await ask(nats_server, behaviours, handler=config(quorum_grace_s=0.5))
    waited = asyncio.get_running_loop().time() - started
    assert code is ErrorCode.NoError
    assert 0.5 <= waited < 4.5  # the grace, not the 5 s request timeout
    assert len(answer["result"]["responses"]) == 2
    assert pick(answer).signers == 2


async def test_every_node_answered_with_f_plus_1_signed_forwards_without_the_grace(
    nats_server: NatsServer,
) -> None:
    """Two signed and two errors from four nodes: forwarded as soon as the last one answers."""
    behaviours = {
        "node-0": errors(),
        "node-1": errors(""),
        "node-2": signing(),
        "node-3": signing(),
    }
    started = asyncio.get_running_loop().time()
    code, answer = await ask(nats_server, behaviours, handler=config(quorum_grace_s=30.0))
    assert code is ErrorCode.NoError
    assert asyncio.get_running_loop().time() - started < 5
    assert len(answer["result"]["responses"]) == 2


async def test_quorum_out_of_reach_is_upstreams_fatal_error_at_once(
    nats_server: NatsServer,
) -> None:
    """Three errors: at most one signed answer possible, F+1 = 2 needed: -32603 at once."""
    behaviours = {"node-0": errors(), "node-1": errors(), "node-2": errors(), "node-3": silent}
    code, answer = await ask(nats_server, behaviours)
    assert code is ErrorCode.FatalError
    assert answer["error"] == {
        "code": -32603,
        "message": "relay quorum unreachable: 0 signed responses, at most 1 possible, need 2"
        " (collected=3 nodes=4 remaining=1 errors=3 undecodable=0)",
        "data": None,
    }


async def test_expiry_below_f_plus_1_signed_is_upstreams_timeout(nats_server: NatsServer) -> None:
    """One signed answer and three silent nodes: -32000 at expiry, naming every count."""
    behaviours = {"node-0": signing(), "node-1": silent, "node-2": silent, "node-3": silent}
    code, answer = await ask(nats_server, behaviours, handler=config(request_timeout_s=0.5))
    assert code is ErrorCode.RequestTimeoutError
    assert answer["error"]["message"] == (
        "request expired: 1 signed relay responses, need at least 2 to reach quorum"
        " (collected=1 nodes=4 unanswered=3 errors=0 undecodable=0)"
    )


async def test_a_bundle_with_two_faulty_signers_leaves_the_enclave_without_quorum(
    nats_server: NatsServer,
) -> None:
    """Beyond F (wrong result and forged signature first): the pick refuses, naming why."""
    behaviours = {
        "node-0": signing(WRONG),
        "node-1": forged_by("node-2"),
        "node-2": honest_after(),
        "node-3": honest_after(0.5),
    }
    code, answer = await ask(nats_server, behaviours)
    assert code is ErrorCode.NoError
    with pytest.raises(NoQuorum, match="need 2 valid distinct signers") as caught:
        pick(answer)
    assert "signature not from any allowed signer" in str(caught.value)
