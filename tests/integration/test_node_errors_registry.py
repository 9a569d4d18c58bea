"""PROTOCOL 2.5 rows that need a registry state, on a real node whose KV bucket each test rewrites.

Every test writes the whole bucket (`load_entries` prunes the rest), then repeats a probe request
until the change is visible in the cache of the actor that answers it (bounded), and only then
sends the request it asserts on. Tests do not depend on each other's state.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from schemas import rpc
from tests.integration.node_errors_support import (
    CW,
    NODE,
    WORKFLOW_DON_ID,
    Relay,
    ask,
    assert_internal,
    attested,
    capability_params,
    error_bytes,
    logged_errors,
    module_seed,
    secrets_params,
)
from workers.attestation.testchain import TestChain
from workers.registry.devseed import seed_entries_for
from workers.registry.store import load_entries
from workers.registry.view import capability_key, node_key

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRETS, CAPABILITY = rpc.MethodSecretsGet, rpc.MethodCapabilityExec
ATTESTATION_CONFIG = "failed to get enclave attestation config: "


# --- registry states --------------------------------------------------------------------------

Seed = dict[str, Any]


def _don(seed: Seed, name: str) -> dict[str, Any]:
    dons: list[dict[str, Any]] = [d for d in seed["dons"] if d["name"] == name]
    (don,) = dons
    return don


def _cw_nowhere(seed: Seed) -> None:
    workflow = _don(seed, "workflow-don")
    workflow["capabilities"] = []
    del workflow["configs"][CW]


def _cw_not_listed(seed: Seed) -> None:
    _don(seed, "workflow-don")["capabilities"] = []


def _cw_without_config(seed: Seed) -> None:
    del _don(seed, "workflow-don")["configs"][CW]


def _cw_null_config(seed: Seed) -> None:
    _don(seed, "workflow-don")["configs"][CW] = None


def _cw_no_trusted_values(seed: Seed) -> None:
    _don(seed, "workflow-don")["configs"][CW]["Enclaves"][0]["trustedValues"] = []


def _no_vault(seed: Seed) -> None:
    _don(seed, "vault-don")["capabilities"] = []


def _no_nodes(seed: Seed) -> None:
    seed["nodes"] = {}


Entries = dict[str, bytes]


def state(
    chain: TestChain, edit: Callable[[Seed], None] | None = None, raw: Entries | None = None
) -> Entries:
    """The module's seed, edited, as bucket entries; `raw` overrides keys the seed checks refuse."""
    seed = module_seed(chain)
    if edit is not None:
        edit(seed)
    return {**seed_entries_for(seed), **(raw or {})}


def edited(
    edit: Callable[[Seed], None] | None = None, raw: Entries | None = None
) -> Callable[[TestChain], Entries]:
    """A registry state for a parameter list (built when the test has its chain)."""
    return lambda chain: state(chain, edit, raw)


async def when_visible(
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
    entries: dict[str, bytes],
    make: Callable[[str], bytes],
    expected: Callable[[bytes, list[tuple[int, str]]], bool],
    timeout_s: float = 4.0,
) -> None:
    """Write the bucket, then probe until the node answers as `expected` (bounded)."""
    await load_entries(relay.nc, entries)
    deadline = time.monotonic() + timeout_s
    for attempt in itertools.count():
        probe = f"probe-{attempt}"
        raw = await ask(relay.nc, make(probe))
        logged = logged_errors(caplog, probe)
        if expected(raw, logged):
            caplog.clear()
            return
        assert time.monotonic() < deadline, f"registry change not visible: {raw!r} {logged}"
        await asyncio.sleep(0.05)


def logs(code: int, detail: str, *, prefix: bool = False) -> Callable[..., bool]:
    def check(raw: bytes, logged: list[tuple[int, str]]) -> bool:
        return (
            len(logged) == 1
            and logged[0][0] == code
            and (logged[0][1].startswith(detail) if prefix else logged[0][1] == detail)
        )

    return check


def request(chain: TestChain, method: str, **overrides: Any) -> Callable[[str], bytes]:
    params = secrets_params(**overrides) if method == SECRETS else capability_params(**overrides)
    return lambda request_id: attested(chain, method, params, request_id)


# --- row 3: the trusted measurements cannot be read --------------------------------------------

MEASUREMENT_STATES = [
    pytest.param(
        edited(_cw_nowhere),
        f"{ATTESTATION_CONFIG}failed to find DON for {CW}: could not find DON for capability {CW}",
        id="no-don-hosts-or-configures-it",
    ),
    pytest.param(
        lambda chain: {},
        f"{ATTESTATION_CONFIG}failed to find DON for {CW}: empty local registry: no DONs registered",
        id="empty-registry",
    ),
    pytest.param(
        edited(_cw_not_listed),
        f"{ATTESTATION_CONFIG}no DON found hosting {CW}",
        id="configured-not-listed",
    ),
    pytest.param(
        edited(_cw_without_config),
        f"{ATTESTATION_CONFIG}failed to get config for {CW}: could not find capability "
        f"configuration for capability {CW} and donID {WORKFLOW_DON_ID}",
        id="listed-without-config",
    ),
    pytest.param(
        edited(_cw_null_config),
        f"{ATTESTATION_CONFIG}no default config for {CW}",
        id="null-default-config",
    ),
    pytest.param(
        edited(raw={capability_key(WORKFLOW_DON_ID, CW): b'{"Enclaves":"nope"}'}),
        f"{ATTESTATION_CONFIG}failed to unwrap enclave config: Enclaves: expected a list, got string",
        id="config-does-not-unwrap",
    ),
    pytest.param(
        edited(_cw_no_trusted_values),
        "no trusted measurements found in capabilities registry",  # not wrapped (a separate row)
        id="no-measurements",
    ),
]


@pytest.mark.parametrize(("entries", "detail"), MEASUREMENT_STATES)
@pytest.mark.parametrize("method", [SECRETS, CAPABILITY])
async def test_a_registry_without_usable_measurements_fails_attestation_as_internal_error(
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
    method: str,
    entries: Callable[[TestChain], Entries],
    detail: str,
) -> None:
    """Row 3 of both methods: `internal error` on the wire, the registry's reason in the log."""
    make = request(relay.chain, method)
    await when_visible(relay, caplog, entries(relay.chain), make, logs(rpc.ErrInternal, detail))
    assert_internal(
        await ask(relay.nc, make("req-1")), caplog, request_id="req-1", method=method, detail=detail
    )


# --- rows 4 and 7 of secrets.get, and where they sit around the owner check ---------------------


@pytest.mark.parametrize("owner", [None, "0xnot-hex"], ids=["good-owner", "bad-owner"])
async def test_a_missing_vault_capability_is_internal_error_even_before_the_owner_check(
    relay: Relay, caplog: pytest.LogCaptureFixture, owner: str | None
) -> None:
    """Row 4 comes before row 5: without vault@1.0.0 even a bad owner gets -32603."""
    make = request(relay.chain, SECRETS, **({"owner": owner} if owner else {}))
    expected = logs(rpc.ErrInternal, "failed to get vault capability: ", prefix=True)
    await when_visible(relay, caplog, state(relay.chain, _no_vault), make, expected)
    relay.vault.reset()
    err = assert_internal(
        await ask(relay.nc, make("req-1")),
        caplog,
        request_id="req-1",
        method=SECRETS,
        detail="failed to get vault capability: ",
        prefix=True,
    )
    assert err.endswith(rpc.VaultCapabilityID), err
    assert relay.vault.calls == []


LOCAL_NODE_STATES = [
    pytest.param(
        edited(_no_nodes),
        f"failed to get local node: could not find node {NODE}",
        id="node-unknown",
    ),
    pytest.param(
        edited(raw={node_key(NODE): b'{"workflow_don_id":99}'}),
        f"failed to get local node: node {NODE}: could not find workflow don 99",
        id="workflow-don-unknown",
    ),
]


@pytest.mark.parametrize(("entries", "detail"), LOCAL_NODE_STATES)
async def test_a_missing_local_node_is_internal_error_after_a_good_owner(
    relay: Relay,
    caplog: pytest.LogCaptureFixture,
    entries: Callable[[TestChain], Entries],
    detail: str,
) -> None:
    """Row 7: LocalNode fails; `internal error` on the wire, the reason in the log, no vault call."""
    make = request(relay.chain, SECRETS)
    await when_visible(relay, caplog, entries(relay.chain), make, logs(rpc.ErrInternal, detail))
    relay.vault.reset()
    assert_internal(
        await ask(relay.nc, make("req-1")),
        caplog,
        request_id="req-1",
        method=SECRETS,
        detail=detail,
    )
    assert relay.vault.calls == []


async def test_a_bad_owner_is_reported_before_a_missing_local_node(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 5 comes before row 7: with no local node a bad owner is still -32602."""
    await when_visible(
        relay,
        caplog,
        state(relay.chain, _no_nodes),
        request(relay.chain, SECRETS),
        logs(rpc.ErrInternal, "failed to get local node: ", prefix=True),
    )
    raw = await ask(relay.nc, request(relay.chain, SECRETS, owner="0xnot-hex")("req-1"))
    assert raw == error_bytes(
        "req-1", SECRETS, rpc.ErrInvalidParams, 'invalid owner address: "0xnot-hex"'
    )


async def test_the_node_serves_again_once_the_registry_is_fixed(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail closed, not stuck: after a broken state the good registry makes secrets.get succeed."""
    make = request(relay.chain, SECRETS)
    await when_visible(
        relay, caplog, state(relay.chain), make, lambda raw, logged: b'"result"' in raw
    )
    assert b'"result":{"secrets":[' in await ask(relay.nc, make("req-1"))
