"""Every answer fits the server's max_payload or is a prompt -32603 (issue 13, defect 2).

A node with real actors behind a fake vault and a fake capability (tests/integration/conftest.py);
its budget is 3 s, and "prompt" here means well inside it.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from google.protobuf import any_pb2

from schemas import capability, rpc
from schemas.proto.gen import sdk_pb2
from tests.integration.node_errors_support import (
    FAKE_CAP,
    FAKE_METHODS,
    Relay,
    ask,
    assert_internal,
    attested,
    capability_params,
    envelope,
    secrets_params,
)
from workers.dispatch.secrets import MAX_SECRETS_PER_REQUEST
from workers.reference import vault as vault_ref

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROMPT_S = 2.0


async def test_a_method_whose_minus_32601_would_exceed_max_payload_gets_a_prompt_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """A 600 KB method echoed twice would be 1.2 MB: the node answers -32603 at once instead."""
    method = "m" * 600_000
    started = time.monotonic()
    raw = await ask(relay.nc, envelope(method, {}, "big-method"))
    assert time.monotonic() - started < PROMPT_S
    assert len(raw) <= relay.nc.max_payload
    answer = json.loads(raw)
    assert answer["id"] == "big-method"
    assert answer["error"] == {"code": rpc.ErrInternal, "message": rpc.INTERNAL_ERROR_MESSAGE}
    logged = [r for r in caplog.records if getattr(r, "request_id", None) == "big-method"]
    assert any("max_payload" in str(getattr(r, "err", "")) for r in logged)


async def test_a_short_unsupported_method_still_gets_its_minus_32601(relay: Relay) -> None:
    """The fallback is only for answers that do not fit: a normal -32601 is unchanged."""
    answer = json.loads(await ask(relay.nc, envelope("nope", {}, "small-method")))
    assert answer["error"] == {"code": -32601, "message": "unsupported method: nope"}


async def test_more_secrets_than_the_bound_are_an_internal_error_without_a_vault_call(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """MAX_SECRETS_PER_REQUEST + 1 secrets: -32603 (PROTOCOL 2.5 row 8), the vault never called."""
    secrets = [{"key": "API_KEY", "namespace": ""}] * (MAX_SECRETS_PER_REQUEST + 1)
    body = attested(relay.chain, rpc.MethodSecretsGet, secrets_params(secrets=secrets), "many")
    raw = await ask(relay.nc, body)
    assert_internal(
        raw,
        caplog,
        request_id="many",
        method=rpc.MethodSecretsGet,
        detail=f"vault execute failed: {MAX_SECRETS_PER_REQUEST + 1} secrets requested",
        prefix=True,
    )
    assert relay.vault.calls == []


async def test_exactly_the_bound_of_secrets_reaches_the_vault(relay: Relay) -> None:
    """MAX_SECRETS_PER_REQUEST secrets are allowed: the vault is asked once."""
    secrets = [{"key": "API_KEY", "namespace": ""}] * MAX_SECRETS_PER_REQUEST
    body = attested(relay.chain, rpc.MethodSecretsGet, secrets_params(secrets=secrets), "bound")
    answer = json.loads(await ask(relay.nc, body))
    assert "result" in answer, answer
    assert len(relay.vault.calls) == 1


async def test_a_vault_answer_over_max_payload_is_a_prompt_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """A DON answer too large to publish is replaced by the DON's error at once: -32603."""
    huge = capability.CapabilityOutcome(payload=b"\x00" * relay.nc.max_payload)
    relay.vault.answer = lambda call: huge
    started = time.monotonic()
    raw = await ask(relay.nc, attested(relay.chain, rpc.MethodSecretsGet, secrets_params()))
    assert time.monotonic() - started < PROMPT_S
    assert_internal(
        raw,
        caplog,
        request_id="req-1",
        method=rpc.MethodSecretsGet,
        detail=f"vault execute failed: {vault_ref.TOO_LARGE}",
    )


def _outcome_just_under(limit: int) -> capability.CapabilityOutcome:
    """A capability outcome whose encoding fits `limit` by under 64 bytes."""
    size = limit * 3 // 4
    while True:
        wrapped = any_pb2.Any(type_url="type.googleapis.com/x", value=b"\x00" * size)
        outcome = capability.CapabilityOutcome(payload=wrapped.SerializeToString())
        encoded = len(capability.ENCODER.encode(outcome))
        if limit - 64 <= encoded <= limit - 8:
            return outcome
        size += (limit - 32 - encoded) * 3 // 4 or 1


async def test_a_capability_result_whose_answer_would_exceed_max_payload_is_an_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """The capability's outcome fits, the node's JSON-RPC answer around it does not: -32603."""
    outcome = _outcome_just_under(relay.nc.max_payload)
    relay.cap.answer = lambda call: outcome
    request = sdk_pb2.CapabilityRequest(method=FAKE_METHODS[0]).SerializeToString()
    params = capability_params(
        capability_id=FAKE_CAP,
        payload=base64.b64encode(request).decode(),
        reference_id="ref-big-result",
    )
    started = time.monotonic()
    raw = await ask(relay.nc, attested(relay.chain, rpc.MethodCapabilityExec, params))
    assert time.monotonic() - started < PROMPT_S
    assert json.loads(raw)["error"] == {
        "code": rpc.ErrInternal,
        "message": rpc.INTERNAL_ERROR_MESSAGE,
    }
    assert len(relay.cap.calls) == 1
