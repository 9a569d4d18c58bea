"""Property-based fuzzing at the library level: the envelope and params through the real ingress
(its stages in memory, the verifier real), the attestation document through the Nitro verifier,
and the bus messages through their decoders and the verifier actor.

Every input gets the answer PROTOCOL 2.5 gives it (`fuzzing.expected_answer`), or for arbitrary
bytes at least a well-formed answer from the spec's tables; nothing raises.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas import bus, rpc
from tests.chaos import fuzzing
from tests.chaos.fuzzing import (
    CHAIN,
    VALID_DOCUMENT,
    Pairs,
    bounded,
    dump_pairs,
    envelopes,
    expected_answer,
    params_envelopes,
)
from workers.attestation.errors import AttestationError
from workers.attestation.measurements import MeasurementIndex
from workers.attestation.roots import TrustRoots
from workers.attestation.verifier import Verifier
from workers.ingress.actor import Ingress
from workers.protocol import binding
from workers.runtime.settings import NodeSettings
from workers.verifier.actor import VerifierActor

VERIFIER = Verifier(TrustRoots.development(CHAIN.root_pem))
TRUSTED = [CHAIN.trusted_values_json()]
RESULT = b'{"payload":"ZnV6eg=="}'


class MemoryStages:
    """The node's stages in memory: the registry's trusted sets, the real verifier actor, and a
    dispatcher that answers one fixed result (counted, so a test sees whether it was reached)."""

    def __init__(self) -> None:
        self.verifier = VerifierActor(VERIFIER, max_age_s=300.0)
        self.dispatched = 0

    async def measurements(self, deadline: float) -> bus.Measurements | bus.StageError:
        return bus.Measurements(revision=1, trusted_values=TRUSTED)

    async def verify(self, req: bus.VerifyRequest, deadline: float) -> bus.VerifyReply:
        return self.verifier.handle(req)

    async def dispatch(self, req: bus.DispatchRequest, deadline: float) -> bus.DispatchReply:
        self.dispatched += 1
        return bus.DispatchResult(result=msgspec.Raw(RESULT))


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the module's examples (hypothesis drives plain functions)."""
    running = asyncio.new_event_loop()
    try:
        yield running
    finally:
        running.close()


def answer(loop: asyncio.AbstractEventLoop, raw: bytes) -> tuple[bytes, MemoryStages]:
    stages = MemoryStages()
    ingress = Ingress(stages, settings=NodeSettings(request_timeout_s=5.0))
    return loop.run_until_complete(asyncio.wait_for(ingress.handle(raw), 10.0)), stages


# --- the envelope and the params ------------------------------------------------------------------


@bounded(400)
@given(pairs=envelopes())
def test_every_json_envelope_gets_the_answer_the_spec_table_gives_it(
    loop: asyncio.AbstractEventLoop, pairs: Pairs
) -> None:
    """Any JSON object as an envelope (odd types, case variants, repeated keys, hostile params
    and documents) is answered with exactly PROTOCOL 2.5's code, and never dispatched."""
    raw = dump_pairs(pairs).encode()
    got, stages = answer(loop, raw)
    fuzzing.check_response(got, expected_answer(pairs))
    assert stages.dispatched == 0


@bounded(400)
@given(pairs=params_envelopes())
def test_every_params_value_gets_the_answer_the_spec_table_gives_it(
    loop: asyncio.AbstractEventLoop, pairs: Pairs
) -> None:
    """Params of any shape and field types, with absent, empty, garbage, truncated, altered or
    misbound documents, get exactly PROTOCOL 2.5's code and are never dispatched."""
    got, stages = answer(loop, dump_pairs(pairs).encode())
    fuzzing.check_response(got, expected_answer(pairs))
    assert stages.dispatched == 0


@bounded(300)
@given(
    raw=st.one_of(
        st.binary(max_size=200), fuzzing.json_values.map(lambda v: json.dumps(v).encode())
    )
)
def test_arbitrary_bytes_get_a_well_formed_answer_from_the_spec_table(
    loop: asyncio.AbstractEventLoop, raw: bytes
) -> None:
    """Bytes that are not an envelope (binary, truncated, any JSON value) get one well-formed
    answer with a code of the node's table; -32603 never carries detail."""
    got, stages = answer(loop, raw)
    body = fuzzing.check_response(got, None)
    assert "error" in body, got
    assert stages.dispatched == 0


@bounded(100)
@given(
    value=st.one_of(
        fuzzing.scalars.filter(lambda v: v is not None),
        st.lists(fuzzing.json_values, max_size=3),
    )
)
def test_a_top_level_value_that_is_not_an_object_is_a_parse_error(
    loop: asyncio.AbstractEventLoop, value: Any
) -> None:
    """An array, string, number or boolean envelope cannot fill Go's struct: -32700."""
    got, _ = answer(loop, json.dumps(value).encode())
    body = fuzzing.check_response(got, None)
    assert body["error"]["code"] == rpc.ErrParse, got


@bounded(60)
@given(
    workflow=st.text(max_size=20),
    reference=st.text(max_size=12),
    payload=st.text(max_size=12),
    request_id=st.text(max_size=20),
)
def test_a_validly_attested_capability_request_with_any_field_text_is_dispatched(
    loop: asyncio.AbstractEventLoop, workflow: str, reference: str, payload: str, request_id: str
) -> None:
    """The control: the same path with a document bound to the params reaches dispatch, so the
    -32603 answers above are the attestation's verdict, not a path that always fails."""
    params = {
        "workflow_id": workflow,
        "capability_id": "echo@1.0.0",
        "reference_id": reference,
        "payload": payload,
    }
    bound = binding.bind(rpc.MethodCapabilityExec, json.dumps(params).encode())
    params["attestation"] = base64.b64encode(CHAIN.document(user_data=bound.user_data)).decode()
    raw = json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": rpc.MethodCapabilityExec, "params": params}
    ).encode()
    got, stages = answer(loop, raw)
    body = fuzzing.check_response(
        got, fuzzing.Expected(None, None, request_id, rpc.MethodCapabilityExec)
    )
    assert body["result"] == json.loads(RESULT)
    assert stages.dispatched == 1


# --- the attestation document -------------------------------------------------------------------


def verify(document: bytes) -> None:
    VERIFIER.verify(
        document,
        now=time.time(),
        expected_user_data=b"\x01" * 32,
        trusted=MeasurementIndex.from_json_values(TRUSTED),
        max_age_s=300.0,
    )


def test_the_unmodified_document_verifies() -> None:
    """The control for the mutations below: the document they start from is valid."""
    verify(VALID_DOCUMENT)


@bounded(500)
@given(at=st.integers(0, len(VALID_DOCUMENT) - 1), value=st.integers(0, 255))
def test_a_document_with_any_byte_changed_is_rejected_with_an_attestation_error(
    at: int, value: int
) -> None:
    """Each byte of a signed document is load-bearing: changing any one of them is rejected,
    and only ever as an AttestationError (the one error type the node maps to -32603)."""
    document = VALID_DOCUMENT[:at] + bytes([value]) + VALID_DOCUMENT[at + 1 :]
    assume(document != VALID_DOCUMENT)
    with pytest.raises(AttestationError):
        verify(document)


@bounded(200)
@given(
    document=st.one_of(
        st.binary(max_size=300),
        st.integers(1, len(VALID_DOCUMENT) - 1).map(lambda n: VALID_DOCUMENT[:n]),
        st.builds(
            lambda at, junk: VALID_DOCUMENT[:at] + junk + VALID_DOCUMENT[at:],
            st.integers(0, len(VALID_DOCUMENT)),
            st.binary(min_size=1, max_size=16),
        ),
    )
)
def test_arbitrary_or_spliced_document_bytes_raise_only_an_attestation_error(
    document: bytes,
) -> None:
    """Random, truncated or spliced documents never verify and never raise anything else."""
    with pytest.raises(AttestationError):
        verify(document)


# --- the bus messages ----------------------------------------------------------------------------

BUS_DECODERS = (
    bus.REGISTRY_REQUEST_DECODER,
    bus.REGISTRY_REPLY_DECODER,
    bus.VERIFY_REQUEST_DECODER,
    bus.VERIFY_REPLY_DECODER,
    bus.DISPATCH_REQUEST_DECODER,
    bus.DISPATCH_REPLY_DECODER,
)
bus_bytes = st.one_of(
    st.binary(max_size=120),
    fuzzing.json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["type", "document", "expected_user_data", "trusted_values", "x"]),
        st.one_of(
            st.sampled_from(["verify", "dispatch", "error", "measurements"]), fuzzing.json_values
        ),
        max_size=5,
    ).map(lambda v: json.dumps(v).encode()),
)


@bounded(300)
@given(data=bus_bytes)
def test_every_bus_decoder_rejects_bad_bytes_with_a_msgspec_error_only(data: bytes) -> None:
    """A bus message that is not one of ours fails to decode as msgspec's own error (which the
    actors catch), never anything else."""
    for decoder in BUS_DECODERS:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            decoder.decode(data)


@bounded(300)
@given(data=bus_bytes)
def test_the_verifier_actor_answers_any_bytes_with_a_stage_error(
    loop: asyncio.AbstractEventLoop, data: bytes
) -> None:
    """Whatever reaches the verify subject, the verifier answers a StageError -32603; nothing
    but a bound, trusted document is ever Verified."""
    actor = VerifierActor(VERIFIER, max_age_s=300.0)
    reply = bus.VERIFY_REPLY_DECODER.decode(loop.run_until_complete(actor.handle_bytes(data, None)))
    assert isinstance(reply, bus.StageError), reply
    assert (reply.code, reply.message) == (rpc.ErrInternal, rpc.INTERNAL_ERROR_MESSAGE)
