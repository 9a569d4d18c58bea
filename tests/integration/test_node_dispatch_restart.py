"""A capability DON restarting (no responders) costs a request a pause, not its answer.

No responders means nobody listened, so nothing ran: the dispatcher retries within the node's
budget (3 s here), and the capability runs exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from schemas import capability, rpc
from schemas.proto.gen import sdk_pb2
from tests.integration.node_errors_support import (
    FAKE_CAP,
    FAKE_METHODS,
    Relay,
    ask,
    attested,
    capability_params,
    secrets_params,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_a_capability_that_comes_back_within_the_budget_is_called_once(relay: Relay) -> None:
    """The capability is down when the request arrives and back 0.8 s later: one call, a result."""
    await relay.cap.stop()
    relay.cap.answer = lambda call: capability.CapabilityOutcome(payload=b"")
    request = sdk_pb2.CapabilityRequest(method=FAKE_METHODS[0]).SerializeToString()
    params = capability_params(
        capability_id=FAKE_CAP,
        payload=base64.b64encode(request).decode(),
        reference_id="ref-restart",
    )
    asked = asyncio.create_task(
        ask(relay.nc, attested(relay.chain, rpc.MethodCapabilityExec, params))
    )
    await asyncio.sleep(0.8)
    assert not asked.done()  # still waiting for the DON, not answered -32603 at once
    await relay.cap.start(relay.url, capability_id=FAKE_CAP, methods=FAKE_METHODS, name="fake-cap")
    answer = json.loads(await asked)
    assert answer.get("result") == {}, answer
    assert len(relay.cap.calls) == 1


async def test_a_vault_that_comes_back_within_the_budget_serves_the_secret(relay: Relay) -> None:
    """The vault is down when the request arrives and back 0.8 s later: the secret is served."""
    await relay.vault.stop()
    asked = asyncio.create_task(
        ask(relay.nc, attested(relay.chain, rpc.MethodSecretsGet, secrets_params()))
    )
    await asyncio.sleep(0.8)
    assert not asked.done()
    await relay.vault.start(
        relay.url,
        capability_id=rpc.VaultCapabilityID,
        methods=(rpc.VaultMethodSecretsGet,),
        name="fake-vault",
    )
    answer = json.loads(await asked)
    assert "result" in answer, answer
    assert len(relay.vault.calls) == 1
