"""Property-based fuzzing against running actors (relay worker processes on a real nats-server
with nats.conf): the envelope and params at the node's rpc subject, as the gateway sends them,
and arbitrary bus messages at every stage's subject, as the one user allowed to send there.

Each input gets the spec's answer (`fuzzing.expected_answer`) or the stage's error reply, at once;
after the campaign every process is still running and a valid request is answered correctly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client

from schemas import bus, capability, rpc, subjects
from tests.chaos import fuzzing
from tests.chaos.cluster import DON, NODE, Cluster, Portal, client
from tests.chaos.fuzzing import (
    Pairs,
    bounded,
    dump_pairs,
    envelopes,
    expected_answer,
    params_envelopes,
)
from tests.chaos.load import Figures, open_loop
from tests.chaos.payloads import echo_is_correct, echo_request
from workers.reference import echo as echo_ref

REPLY_TIMEOUT_S = 5.0
"""Far above any answer to a malformed input (milliseconds); an input left unanswered fails."""


async def ask(nc: Client, subject: str, raw: bytes) -> bytes:
    reply = await nc.request(subject, raw, timeout=REPLY_TIMEOUT_S)
    return bytes(reply.data)


@pytest.fixture(scope="module")
def as_ingress(portal: Portal, cluster: Cluster) -> Iterator[Client]:
    """The ingress's user: the only one allowed to send to verify, dispatch and registry."""
    nc = portal.run(client(cluster.url, "ingress"))
    yield nc
    portal.run(nc.close())


@pytest.fixture(scope="module")
def as_dispatcher(portal: Portal, cluster: Cluster) -> Iterator[Client]:
    """The capability dispatcher's user: allowed to call the reference DONs' cap.v1 subjects."""
    nc = portal.run(client(cluster.url, "dispatch-capability"))
    yield nc
    portal.run(nc.close())


@bounded(150)
@given(pairs=envelopes())
def test_a_running_node_answers_every_envelope_as_the_spec_table_says(
    portal: Portal, gateway_nc: Client, pairs: Pairs
) -> None:
    """Any JSON envelope sent to the node's rpc subject gets PROTOCOL 2.5's exact code."""
    raw = portal.run(ask(gateway_nc, subjects.rpc(DON, NODE), dump_pairs(pairs).encode()))
    fuzzing.check_response(raw, expected_answer(pairs))


@bounded(150)
@given(pairs=params_envelopes())
def test_a_running_node_answers_every_params_value_as_the_spec_table_says(
    portal: Portal, gateway_nc: Client, pairs: Pairs
) -> None:
    """Fuzzed params and documents of both methods get PROTOCOL 2.5's exact code."""
    raw = portal.run(ask(gateway_nc, subjects.rpc(DON, NODE), dump_pairs(pairs).encode()))
    fuzzing.check_response(raw, expected_answer(pairs))


@bounded(100)
@given(raw=st.binary(max_size=300))
def test_a_running_node_answers_arbitrary_bytes_with_an_error_of_its_table(
    portal: Portal, gateway_nc: Client, raw: bytes
) -> None:
    """Bytes that are no envelope at all are answered, with a code of the node's table."""
    body = fuzzing.check_response(portal.run(ask(gateway_nc, subjects.rpc(DON, NODE), raw)), None)
    assert "error" in body


bus_bytes = st.one_of(
    st.binary(max_size=200),
    fuzzing.json_values.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(["verify", "dispatch", "error", "capability.call.v1"]).flatmap(
        lambda tag: st.dictionaries(st.text(max_size=12), fuzzing.json_values, max_size=5).map(
            lambda body: json.dumps({"type": tag, **body}).encode()
        )
    ),
)


@bounded(100)
@given(data=bus_bytes)
def test_the_verifier_answers_any_bus_message_with_a_stage_error(
    portal: Portal, as_ingress: Client, data: bytes
) -> None:
    """Whatever reaches the verify subject, the verifier answers -32603 and verifies nothing."""
    raw = portal.run(ask(as_ingress, subjects.verify(DON, NODE), data))
    reply = bus.VERIFY_REPLY_DECODER.decode(raw)
    assert isinstance(reply, bus.StageError), raw
    assert (reply.code, reply.message) == (rpc.ErrInternal, rpc.INTERNAL_ERROR_MESSAGE)


@bounded(100)
@given(method=st.sampled_from(rpc.METHODS), data=bus_bytes)
def test_each_dispatcher_answers_any_bus_message_with_a_stage_error(
    portal: Portal, as_ingress: Client, method: str, data: bytes
) -> None:
    """Whatever reaches a dispatch subject gets a StageError, never a call to a DON."""
    raw = portal.run(ask(as_ingress, subjects.dispatch(DON, NODE, method), data))
    reply = bus.DISPATCH_REPLY_DECODER.decode(raw)
    assert isinstance(reply, bus.StageError), raw


@bounded(60)
@given(data=bus_bytes)
def test_the_registry_answers_any_bus_message_with_one_of_its_replies(
    portal: Portal, as_ingress: Client, data: bytes
) -> None:
    """The registry's lookup subject answers anything with a well-formed registry reply."""
    raw = portal.run(ask(as_ingress, subjects.registry(DON, NODE, "measurements"), data))
    bus.REGISTRY_REPLY_DECODER.decode(raw)


@bounded(100)
@given(data=bus_bytes)
def test_a_reference_don_answers_any_call_with_a_capability_error(
    portal: Portal, as_dispatcher: Client, data: bytes
) -> None:
    """A cap.v1 call that is not a CapabilityCall gets an outcome with an error, no payload."""
    subject = subjects.capability(echo_ref.ECHO_ID, "echo")
    raw = portal.run(ask(as_dispatcher, subject, data))
    outcome = capability.OUTCOME_DECODER.decode(raw)
    assert outcome.error, raw
    assert not outcome.payload, raw


def test_after_the_campaign_every_actor_runs_and_serves(
    portal: Portal, gateway_nc: Client, cluster: Cluster
) -> None:
    """No input above killed or wedged a process: all still run, valid requests succeed."""
    assert all(worker.alive() for worker in cluster.workers)
    figures = portal.run(
        open_loop(
            gateway_nc,
            lambda rid: (echo_request(cluster.chain, rid), echo_is_correct),
            rate=20,
            duration_s=1.0,
            figures=Figures(),
            prefix="after-fuzz",
        )
    )
    assert figures.correct == figures.sent == 20, figures.summary()
