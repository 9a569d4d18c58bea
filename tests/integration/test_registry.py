"""The registry actor against a real nats-server: load, live updates, outages, failing closed."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from schemas import bus, subjects
from tests.conftest import REPO_ROOT
from workers.registry import actor as registry
from workers.registry.store import load_entries, open_bucket, read_seed_file
from workers.registry.view import RegistryView, capability_key
from workers.runtime.bus import connect, request
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

EXAMPLE = REPO_ROOT / "deploy" / "registry.example.json"
CW = registry.CONFIDENTIAL_WORKFLOWS
NEW_PCR = b'{"pcr0":"11","pcr1":"22","pcr2":"33"}'
_ids = itertools.count()


def fresh_bucket() -> str:
    return f"reg_test_{next(_ids)}"


def cw_config(*values: bytes) -> bytes:
    encoded = [base64.b64encode(v).decode() for v in values]
    return msgspec.json.encode({"Enclaves": [{"trustedValues": encoded, "caRootsPEM": ""}]})


async def eventually(
    probe: Callable[[], Awaitable[bool]], *, within_s: float, step_s: float = 0.01
) -> float:
    """Poll `probe` until it holds; returns the seconds it took, fails after `within_s`."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if await probe():
            return time.monotonic() - started
        await asyncio.sleep(step_s)
    pytest.fail(f"condition not met within {within_s}s")


async def ask(nc: Client, settings: NodeSettings, verb: str, req: msgspec.Struct) -> object:
    subject = subjects.registry(settings.don, settings.node, verb)
    data = await request(nc, subject, bus.ENCODER.encode(req), timeout_s=2.0)
    return bus.REGISTRY_REPLY_DECODER.decode(data)


@pytest.fixture
async def actor(
    nats_server: NatsServer,
) -> AsyncIterator[tuple[NodeSettings, registry.RegistryCache]]:
    """A registry actor on its own connection, watching a bucket of its own."""
    # A DON name of its own keeps each test's subjects apart; node-0 is in the example seed.
    settings = NodeSettings(don=f"relay-{next(_ids)}", node="node-0", nats_url=nats_server.url)
    cache = registry.RegistryCache(bucket=fresh_bucket())
    nc = await connect(nats_server.url, actor="registry")
    svc = await registry.run(nc, settings, cache=cache)
    try:
        yield settings, cache
    finally:
        await svc.stop()


async def test_a_loaded_seed_is_served_over_nats(
    nc: Client, actor: tuple[NodeSettings, registry.RegistryCache]
) -> None:
    """After `load`, every verb answers from the seed, the measurements with the KV revision."""
    settings, cache = actor
    result = await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    assert result.created_bucket
    await cache.wait_loaded(5.0)

    measured = await ask(nc, settings, "measurements", bus.MeasurementsRequest())
    assert isinstance(measured, bus.Measurements)
    assert measured.revision == result.revision
    assert b"ec74bfbe" in measured.trusted_values[0]
    assert await ask(
        nc, settings, "capability", bus.CapabilityRequest(capability_id="vault@1.0.0")
    ) == bus.CapabilityInfo(capability_id="vault@1.0.0", don_id=3)
    assert await ask(nc, settings, "local-node", bus.LocalNodeRequest()) == bus.LocalNode(
        workflow_don_id=2, workflow_don_config_version=3
    )
    relay = await ask(nc, settings, "don", bus.DonRequest(name="relay-don"))
    assert relay == bus.DonInfo(
        id=1, name="relay-don", f=1, members=["node-0", "node-1", "node-2", "node-3"]
    )


async def test_a_never_loaded_bucket_fails_closed_over_nats(
    nc: Client, actor: tuple[NodeSettings, registry.RegistryCache]
) -> None:
    """With no bucket at all, the actor answers -32603 with the not-loaded detail."""
    settings, cache = actor
    reply = await ask(nc, settings, "measurements", bus.MeasurementsRequest())
    assert reply == bus.StageError(
        code=-32603,
        message="internal error",
        detail=f"failed to find DON for {CW}: {registry.NOT_LOADED}",
    )
    assert "does not exist" in cache.problem


async def test_a_put_changes_the_answer_within_a_second_without_restart(
    nc: Client, actor: tuple[NodeSettings, registry.RegistryCache]
) -> None:
    """Writing new trusted values into the bucket reaches lookups in under one second."""
    settings, cache = actor
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    before = (await cache.wait_loaded(5.0)).revision
    kv, _ = await open_bucket(nc, cache.bucket, create=False)

    revision = await kv.put(capability_key(2, CW), cw_config(NEW_PCR))

    async def changed() -> bool:
        reply = await ask(nc, settings, "measurements", bus.MeasurementsRequest())
        return isinstance(reply, bus.Measurements) and reply.trusted_values == [NEW_PCR]

    took = await eventually(changed, within_s=1.0)
    assert took < 1.0
    view = await cache.view()
    assert view.revision == revision > before


async def test_a_bad_write_keeps_the_last_known_good_view(
    nc: Client, actor: tuple[NodeSettings, registry.RegistryCache]
) -> None:
    """A value that does not validate is not applied; fixing it is applied again."""
    settings, cache = actor
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    good = await cache.wait_loaded(5.0)
    kv, _ = await open_bucket(nc, cache.bucket, create=False)

    await kv.put("dons.2", b'{"id": 2, "name": "broken"}')

    async def rejected() -> bool:
        return "bucket content rejected" in cache.problem

    await eventually(rejected, within_s=2.0)
    assert await cache.view() is good
    assert isinstance(
        await ask(nc, settings, "measurements", bus.MeasurementsRequest()), bus.Measurements
    )

    await kv.delete("dons.2")  # the DON goes away: confidential-workflows loses its host

    async def applied() -> bool:
        reply = await ask(nc, settings, "measurements", bus.MeasurementsRequest())
        return isinstance(reply, bus.StageError) and reply.detail == f"no DON found hosting {CW}"

    await eventually(applied, within_s=1.0)
    assert cache.problem == ""


async def test_the_cache_serves_last_known_good_through_an_outage_and_resumes(
    tmp_path: Path,
) -> None:
    """Server stopped: the view stays; restarted on the same port and store: the watch resumes."""
    server = NatsServer(jetstream=True, store_dir=tmp_path / "js")
    await server.start()
    cache = registry.RegistryCache(bucket=fresh_bucket())
    nc = await connect(server.url, actor="registry")
    admin = await connect(server.url, actor="test")
    try:
        await load_entries(admin, read_seed_file(EXAMPLE), bucket=cache.bucket)
        await cache.start(nc)
        loaded = await cache.wait_loaded(5.0)
        assert cache.watches_established == 1

        await server.stop()  # SIGTERM by PID

        async def noticed() -> bool:
            return "unreachable" in cache.problem

        await eventually(noticed, within_s=5.0)
        during = await cache.view()
        assert during is loaded
        assert isinstance(registry.measurements(during), bus.Measurements)

        await server.start()  # same port, same store directory

        async def resumed() -> bool:
            return cache.watches_established >= 2

        await eventually(resumed, within_s=10.0)
        kv, _ = await open_bucket(admin, cache.bucket, create=False)
        await kv.put(capability_key(2, CW), cw_config(NEW_PCR))

        async def updated() -> bool:
            m = registry.measurements(await cache.view())
            return isinstance(m, bus.Measurements) and m.trusted_values == [NEW_PCR]

        assert await eventually(updated, within_s=1.0) < 1.0
        assert (await cache.view()).revision > loaded.revision
    finally:
        await cache.stop()
        await nc.close()
        await admin.close()
        await server.stop()
        server.cleanup()


async def test_a_cache_started_before_the_bucket_exists_loads_it_when_it_appears(
    nc: Client, nats_server: NatsServer
) -> None:
    """Failing closed is not permanent: the first load of the bucket is picked up by itself."""
    cache = registry.RegistryCache(bucket=fresh_bucket())
    await cache.start(nc)
    try:
        await asyncio.sleep(0.2)
        assert not (await cache.view()).loaded
        await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
        view = await cache.wait_loaded(2.0)
        assert isinstance(registry.measurements(view), bus.Measurements)
    finally:
        await cache.stop()


async def test_listeners_see_every_new_view(nc: Client) -> None:
    """An in-process user (the gateway) is told about each swapped view."""
    cache = registry.RegistryCache(bucket=fresh_bucket())
    seen: list[int] = []
    cache.add_listener(lambda view: seen.append(view.revision))
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    await cache.start(nc)
    try:
        first = await cache.wait_loaded(5.0)
        kv, _ = await open_bucket(nc, cache.bucket, create=False)
        rev = await kv.put(capability_key(2, CW), cw_config(NEW_PCR))

        async def told() -> bool:
            return seen[-1:] == [rev]

        await eventually(told, within_s=1.0)
        assert seen == [first.revision, rev]
    finally:
        await cache.stop()


async def test_a_watch_whose_consumer_vanished_is_detected_and_rebuilt(nc: Client) -> None:
    """If the server drops the watch's consumer, the health check notices and reloads."""
    cache = registry.RegistryCache(bucket=fresh_bucket(), health_interval_s=0.2)
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    await cache.start(nc)
    try:
        await cache.wait_loaded(5.0)
        js = nc.jetstream()
        stream = f"KV_{cache.bucket}"
        for consumer in await js.consumers_info(stream):
            await js.delete_consumer(stream, consumer.name)
        kv, _ = await open_bucket(nc, cache.bucket, create=False)
        await kv.put(capability_key(2, CW), cw_config(NEW_PCR))

        async def updated() -> bool:
            m = registry.measurements(await cache.view())
            return isinstance(m, bus.Measurements) and m.trusted_values == [NEW_PCR]

        await eventually(updated, within_s=3.0)
        assert cache.watches_established >= 2
    finally:
        await cache.stop()


async def test_a_purged_stream_reaches_a_running_cache_which_then_fails_closed(
    nc: Client,
) -> None:
    """`nats stream purge` tells a watch nothing; the health check sees fewer messages than
    keys and reloads, so a long-running node fails closed like a freshly started one."""
    cache = registry.RegistryCache(bucket=fresh_bucket())
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    await cache.start(nc)
    try:
        assert isinstance(registry.measurements(await cache.wait_loaded(5.0)), bus.Measurements)
        await nc.jetstream().purge_stream(f"KV_{cache.bucket}")

        async def failing_closed() -> bool:
            return isinstance(registry.measurements(await cache.view()), bus.StageError)

        took = await eventually(failing_closed, within_s=3.0)
        assert took < 1.5
        assert cache.watches_established >= 2
    finally:
        await cache.stop()


async def test_a_closed_connection_ends_the_watch_and_freezes_the_view(
    nats_server: NatsServer,
) -> None:
    """When its owner closes the connection, the cache stops retrying and keeps its view."""
    admin = await connect(nats_server.url, actor="test")
    cache = registry.RegistryCache(bucket=fresh_bucket())
    await load_entries(admin, read_seed_file(EXAMPLE), bucket=cache.bucket)
    await admin.close()
    nc = await connect(nats_server.url, actor="registry")
    await cache.start(nc)
    loaded = await cache.wait_loaded(5.0)
    await nc.close()

    async def frozen() -> bool:
        return "connection closed" in cache.problem

    await eventually(frozen, within_s=3.0)
    assert await cache.view() is loaded
    await cache.stop()


async def test_a_multi_key_load_is_applied_as_one_view(nc: Client) -> None:
    """Writes that follow each other closely are swapped in together, never half-applied."""
    cache = registry.RegistryCache(bucket=fresh_bucket(), settle_s=0.3, max_settle_s=2.0)
    await load_entries(nc, read_seed_file(EXAMPLE), bucket=cache.bucket)
    seen: list[RegistryView] = []
    cache.add_listener(seen.append)
    await cache.start(nc)
    try:
        await cache.wait_loaded(5.0)
        entries = dict(read_seed_file(EXAMPLE))
        entries[capability_key(2, CW)] = cw_config(NEW_PCR)
        entries["dons.2"] = entries["dons.2"].replace(b'"config_version":3', b'"config_version":4')
        entries.pop("nodes.node-3")
        result = await load_entries(nc, entries, bucket=cache.bucket)
        assert len(result.put) + len(result.deleted) == 3

        async def applied() -> bool:
            return (await cache.view()).revision == result.revision

        await eventually(applied, within_s=3.0)
        assert len(seen) == 2  # the initial view, then the whole load at once
        final = seen[-1]
        assert registry.local_node(final, "node-0") == bus.LocalNode(
            workflow_don_id=2, workflow_don_config_version=4
        )
        assert "node-3" not in final.nodes
    finally:
        await cache.stop()
