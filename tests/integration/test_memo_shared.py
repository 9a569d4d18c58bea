"""RELAY_DEDUPE=shared for the N4 memo: a node's ingress replicas share signed results via KV."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client

from schemas import current, rpc
from tests.integration import current_support as cs
from tests.integration.node_errors_support import (
    FakeDon,
    ask,
    module_seed,
    node_settings,
    upstream_vault_response,
    vault_answer,
)
from workers.attestation.testchain import TestChain
from workers.ingress.current import memo_key, sign_result
from workers.ingress.memo import MemoUnavailable, MemoWaitTimeout
from workers.ingress.memo_shared import (
    BUCKET,
    BUCKET_MAX_BYTES,
    BUCKET_MAX_VALUE_BYTES,
    SharedResponseMemo,
)
from workers.node.process import NodeProcess
from workers.protocol import binding, signed
from workers.registry.devseed import seed_entries_for
from workers.registry.store import load_entries
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

SECRETS = rpc.MethodSecretsGet

SIGNED = b'{"result":{},"signature":{"signer":"AA==","signature":"AA=="}}'


class Counting:
    def __init__(self, delay_s: float = 0.0, error: Exception | None = None) -> None:
        self.delay_s = delay_s
        self.error = error
        self.calls = 0

    async def __call__(self) -> bytes:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.error is not None:
            raise self.error
        return SIGNED


@pytest.fixture
async def two(nats_server: NatsServer) -> AsyncIterator[list[SharedResponseMemo]]:
    """Two ingress replicas' memos, on their own connections, like two processes."""
    clients: list[Client] = []
    memos = []
    for name in ("ingress-a", "ingress-b"):
        nc = await connect(nats_server.url, actor=name)
        clients.append(nc)
        memos.append(await SharedResponseMemo.open(nc, "node-0"))
    try:
        yield memos
    finally:
        for nc in clients:
            if not nc.is_closed:
                await nc.close()


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def later(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def test_a_retry_reaching_another_replica_gets_the_shared_signed_result(
    two: list[SharedResponseMemo],
) -> None:
    """The second replica never served the key: its answer came from the bucket."""
    key, work = unique("later"), Counting()
    assert await two[0].run(key, work, deadline=later()) == SIGNED
    assert await two[1].run(key, work, deadline=later()) == SIGNED
    assert (work.calls, two[1].executions) == (1, 0)


async def test_concurrent_requests_on_two_replicas_are_served_once(
    two: list[SharedResponseMemo],
) -> None:
    """Both replicas answer the one result; the work ran on exactly one of them."""
    key, work = unique("concurrent"), Counting(delay_s=0.3)
    a, b = await asyncio.gather(*(m.run(key, work, deadline=later()) for m in two))
    assert a == b == SIGNED
    assert work.calls == 1


async def test_a_failed_request_releases_its_claim_so_a_retry_is_served(
    two: list[SharedResponseMemo],
) -> None:
    """Errors are not remembered: after a failure the other replica serves the key itself."""
    key = unique("failed")
    with pytest.raises(ValueError, match="boom"):
        await two[0].run(key, Counting(error=ValueError("boom")), deadline=later())
    work = Counting()
    assert await two[1].run(key, work, deadline=later()) == SIGNED
    assert work.calls == 1


async def test_a_waiter_on_another_replica_past_its_deadline_times_out(
    two: list[SharedResponseMemo],
) -> None:
    """A request whose key is still running elsewhere ends at its own deadline, not served."""
    key, slow, other = unique("held"), Counting(delay_s=1.0), Counting()
    first = asyncio.create_task(two[0].run(key, slow, deadline=later()))
    for _ in range(200):  # until the first one holds the claim (bounded: 2 s)
        if slow.calls:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(MemoWaitTimeout):
        await two[1].run(key, other, deadline=later(0.3))
    assert await first == SIGNED
    assert (slow.calls, other.calls) == (1, 0)


async def test_an_unreachable_bucket_fails_closed(nats_server: NatsServer) -> None:
    """Without the bucket the request is refused, not served unshared."""
    nc = await connect(nats_server.url, actor="ingress-c")
    memo = await SharedResponseMemo.open(nc, "node-0")
    await nc.close()
    work = Counting()
    with pytest.raises(MemoUnavailable, match="unreachable"):
        await memo.run(unique("closed"), work, deadline=later())
    assert work.calls == 0


async def test_the_bucket_is_bounded_in_bytes_and_per_value(nats_server: NatsServer) -> None:
    """Clients drive its writes: the bucket has a total and a per-value bound."""
    nc = await connect(nats_server.url, actor="ingress-bounds")
    try:
        await SharedResponseMemo.open(nc, "node-0")
        info = await nc.jetstream().stream_info(f"KV_{BUCKET}")
        assert info.config.max_bytes == BUCKET_MAX_BYTES
        assert info.config.max_msg_size == BUCKET_MAX_VALUE_BYTES
    finally:
        await nc.close()


@dataclass
class SharedNode:
    """A node's stages under current with RELAY_DEDUPE=shared, its ingress started per test."""

    nc: Client
    chain: TestChain
    relay: cs.Keys
    workflow: cs.Keys
    vault: FakeDon
    settings: NodeSettings

    def secrets_params(self) -> dict[str, Any]:
        execution_id = unique("exec")
        params = cs.secrets_params(self.relay.public, execution_id=execution_id)
        params["signed_compute_requests"] = cs.signed_compute_requests(
            self.workflow.private[:2], workflow_id=params["workflow_id"], execution_id=execution_id
        )
        return params

    @asynccontextmanager
    async def ingress(self) -> AsyncIterator[None]:
        replica = NodeProcess(self.settings, actors=("ingress",))
        await replica.start()
        try:
            yield
        finally:
            await replica.stop()


@asynccontextmanager
async def shared_node(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[SharedNode]:
    chain, relay, workflow = TestChain(), cs.Keys(4), cs.Keys(4)
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    key_file = cs.write_key_file(tmp_path / "node-0.key", relay.private[0])
    seed = module_seed(chain)
    for don in seed["dons"]:
        if don["name"] == "relay-don":
            don["peer_ids"] = [k.hex() for k in relay.public]
        if don["name"] == "workflow-don":
            don["peer_ids"] = [k.hex() for k in workflow.public]
    nc = await connect(nats_server.url, actor="test-memo")
    await load_entries(nc, seed_entries_for(seed))
    vault = FakeDon(vault_answer(upstream_vault_response()))
    settings = node_settings(
        nats_server.url, root, protocol="current", node_key=key_file, dedupe="shared"
    )
    stages = NodeProcess(settings, actors=("registry", "verifier", "dispatch-secrets"))
    try:
        await vault.start(
            nats_server.url,
            capability_id=rpc.VaultCapabilityID,
            methods=(rpc.VaultMethodSecretsGet,),
            name="fake-vault-memo",
        )
        await stages.start()
        yield SharedNode(nc, chain, relay, workflow, vault, settings)
    finally:
        await stages.stop()
        await vault.stop()
        await nc.close()


async def test_a_retry_served_by_a_new_ingress_replica_comes_from_the_shared_memo(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Real actors, RELAY_DEDUPE=shared: the ingress that signed is stopped, another replica
    starts with an empty memory and answers the retry (a new id) from relay_memo, byte for byte
    but for the id, without asking the vault again."""
    async with shared_node(nats_server, tmp_path) as node:
        params = node.secrets_params()
        async with node.ingress():
            first = await ask(node.nc, cs.attested_current(node.chain, SECRETS, params, "m-1"))
        assert b'"signature"' in first, first
        async with node.ingress():
            retry = await ask(node.nc, cs.attested_current(node.chain, SECRETS, params, "m-2"))
        assert retry == first.replace(b'"id":"m-1"', b'"id":"m-2"')
        assert len(node.vault.calls) == 1


async def test_an_entry_another_node_planted_in_the_shared_memo_is_not_served(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The bucket is shared on the account: a value under this node's key that is not its own
    signature over the request (another operator's ingress wrote it) is replaced, not served."""
    async with shared_node(nats_server, tmp_path) as node:
        params = node.secrets_params()
        bound = binding.bind_current(SECRETS, json.dumps(params).encode())
        assert isinstance(bound.params, current.SecretsRequestParams)
        kv = await node.nc.jetstream().key_value(BUCKET)
        planter = await SharedResponseMemo.open(node.nc, "node-0")
        kv_key = planter.kv_key(memo_key(bound.params))
        forger = signed.NodeKey(b"\x05" * 32)
        planted = sign_result(forger, SECRETS, bound.params, b'{"secrets":null}')
        await kv.put(kv_key, planted)
        async with node.ingress():
            answer = json.loads(
                await ask(node.nc, cs.attested_current(node.chain, SECRETS, params, "p-1"))
            )
        body = answer["result"]
        assert base64.b64decode(body["signature"]["signer"]) == node.relay.public[0]
        assert body["result"]["secrets"] is not None
        assert len(node.vault.calls) == 1
        assert (await kv.get(kv_key)).value != planted
