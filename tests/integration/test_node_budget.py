"""A slow DON behind dispatch: called once, given only the ingress's remaining budget.

The node runs with a 3 s request budget and 0.5 s attempts at pure stages (node_settings).
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

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
    secrets_params,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

BUDGET_S, ATTEMPT_S = 3.0, 0.5


async def test_a_vault_slower_than_one_attempt_answers_and_is_called_once(relay: Relay) -> None:
    """A secrets read taking twice a pure stage's attempt still succeeds, with one vault call."""
    relay.vault.delay_s = 2 * ATTEMPT_S
    raw = await ask(relay.nc, attested(relay.chain, rpc.MethodSecretsGet, secrets_params()))
    assert "result" in json.loads(raw), raw
    assert len(relay.vault.calls) == 1


async def test_a_slow_capability_answers_and_is_executed_once(relay: Relay) -> None:
    """A capability taking longer than an attempt is waited for, never sent a second time."""
    relay.cap.answer = lambda call: capability.CapabilityOutcome(payload=b"")
    relay.cap.delay_s = 2 * ATTEMPT_S
    request = sdk_pb2.CapabilityRequest(method=FAKE_METHODS[0]).SerializeToString()
    params = capability_params(capability_id=FAKE_CAP, payload=base64.b64encode(request).decode())
    raw = await ask(relay.nc, attested(relay.chain, rpc.MethodCapabilityExec, params))
    assert json.loads(raw).get("result") == {}, raw
    assert len(relay.cap.calls) == 1


async def test_a_vault_slower_than_the_budget_is_a_timely_internal_error(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the budget: `internal error` by the deadline, the vault asked once, detail logged."""
    relay.vault.delay_s = BUDGET_S + 2.0  # far past the budget: an answer would come too late
    started = time.monotonic()
    raw = await ask(relay.nc, attested(relay.chain, rpc.MethodSecretsGet, secrets_params()))
    elapsed = time.monotonic() - started
    assert BUDGET_S - 0.5 < elapsed < BUDGET_S + 1.0
    detail = assert_internal(
        raw,
        caplog,
        request_id="req-1",
        method=rpc.MethodSecretsGet,
        detail="vault execute failed",
        prefix=True,
    )
    assert "timed out" in detail or "no reply" in detail, detail
    assert len(relay.vault.calls) == 1


async def test_a_capability_slower_than_the_budget_answers_a_fixed_error_and_runs_once(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the budget the call may have run: a fixed `error` result, the same on a retry."""
    relay.cap.answer = lambda call: capability.CapabilityOutcome(payload=b"")
    relay.cap.delay_s = BUDGET_S + 0.5
    request = sdk_pb2.CapabilityRequest(method=FAKE_METHODS[0]).SerializeToString()
    params = capability_params(
        capability_id=FAKE_CAP,
        payload=base64.b64encode(request).decode(),
        reference_id="ref-budget-timeout",  # its own logical key: no earlier call's outcome
    )
    body = attested(relay.chain, rpc.MethodCapabilityExec, params)
    caplog.set_level(logging.WARNING, logger="relay.dispatch.capability")
    first = json.loads(await ask(relay.nc, body))
    # Fixed text: no subject, no timing, so every node that timed out answers the same bytes.
    assert first.get("result") == {"error": "capability execute timed out"}, first
    assert any("may have run" in r.getMessage() for r in caplog.records)
    relay.cap.delay_s = 0.0
    again = json.loads(await ask(relay.nc, body))
    assert again == first
    assert len(relay.cap.calls) == 1
