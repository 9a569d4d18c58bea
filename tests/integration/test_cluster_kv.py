"""Server lists, replicated KV buckets and JetStream domains on real nats-servers (a 3-server
cluster, a hub with a leaf), as an operator of a node on a real NATS deployment meets them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import nats.js.errors
import pytest

from tests.conftest import REPO_ROOT
from tests.integration.cluster import cluster, connect_until, hub_and_leaf
from workers.dispatch.dedupe_shared import BUCKET as DEDUPE_BUCKET
from workers.dispatch.dedupe_shared import SharedDeduplicator
from workers.registry.actor import RegistryCache, measurements
from workers.registry.store import bucket_replicas, load_seed_file
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer, free_port

EXAMPLE = REPO_ROOT / "deploy" / "registry.example.json"
RELAY = Path(sys.executable).parent / "relay"


def relay(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RELAY), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_a_cli_given_a_list_whose_first_server_is_dead_still_works(
    nats_server: NatsServer,
) -> None:
    """`--nats dead,live` loads and shows the registry: one dead server does not stop a start."""
    servers = f"nats://127.0.0.1:{free_port()},{nats_server.url}"
    loaded = relay("registry", "load", str(EXAMPLE), "--nats", servers, "--bucket", "list_a")
    assert loaded.returncode == 0, loaded.stderr
    shown = relay("registry", "show", "--json", "--nats", servers, "--bucket", "list_a")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["dons"]


async def test_an_actor_connection_given_a_dead_server_first_connects_to_the_live_one(
    nats_server: NatsServer,
) -> None:
    """The shared connect takes a list and reaches the live server whatever the order tried."""
    dead = f"nats://127.0.0.1:{free_port()}"
    for _ in range(3):  # nats-py shuffles the list: a few tries cover both orders
        nc = await connect(f"{dead},{nats_server.url}", actor="test", initial_timeout_s=10)
        try:
            assert nc.connected_url is not None
            assert nc.connected_url.port == nats_server.port
        finally:
            await nc.close()


def test_a_replicated_bucket_on_a_single_server_is_refused_with_jetstreams_reason(
    nats_server: NatsServer,
) -> None:
    """`--replicas 3` without a cluster exits 1 saying what JetStream refused, no traceback."""
    loaded = relay(
        "registry", "load", str(EXAMPLE), "--nats", nats_server.url, "--bucket", "r3_single",
        "--replicas", "3",
    )  # fmt: skip
    assert loaded.returncode == 1
    assert "JetStream refused" in loaded.stderr
    assert "Traceback" not in loaded.stderr


def test_show_against_a_server_without_jetstream_says_jetstream_did_not_answer() -> None:
    """A server that answers without JetStream is named as such, not as 'no server answered'."""
    server = NatsServer(jetstream=False)
    server.start_sync()
    try:
        shown = relay("registry", "show", "--nats", server.url, "--timeout", "2")
    finally:
        server.cleanup()
    assert shown.returncode == 1
    assert "JetStream is unavailable" in shown.stderr, shown.stderr
    assert "no NATS server answered" not in shown.stderr


async def _stream_leader(url: str, stream: str) -> str:
    nc = await connect_until(url)
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
        assert info.cluster is not None
        assert info.cluster.leader
        return info.cluster.leader
    finally:
        await nc.close()


async def test_a_registry_at_r3_survives_the_loss_of_its_stream_leader(tmp_path: Path) -> None:
    """On a 3-server cluster `relay registry load --replicas 3` makes an R3 bucket; with the
    server holding its leader killed (-9), a node that starts during the outage, given the
    survivors, still loads the registry and serves its lookups."""
    with cluster(tmp_path) as servers:
        urls = ",".join(s.url for s in servers)
        loaded = await asyncio.to_thread(
            relay, "registry", "load", str(EXAMPLE), "--nats", urls, "--replicas", "3"
        )
        assert loaded.returncode == 0, loaded.stderr
        nc = await connect_until(urls)
        try:
            assert await bucket_replicas(nc) == 3
        finally:
            await nc.close()
        leader = await _stream_leader(urls, "KV_relay_registry")
        victim = next(s for s in servers if s.config_file and s.config_file.stem == leader)
        victim.kill()
        survivors = ",".join(s.url for s in servers if s is not victim)
        fresh = await connect_until(survivors)
        cache = RegistryCache()
        try:
            await cache.start(fresh)
            view = await cache.wait_loaded(30.0)
            assert view.dons, cache.problem
            assert type(measurements(view)).__name__ == "Measurements"
        finally:
            await cache.stop()
            await fresh.close()


async def test_the_shared_dedupe_bucket_takes_its_replicas_from_the_settings(
    tmp_path: Path,
) -> None:
    """RELAY_KV_REPLICAS (`kv_replicas`) is the replica count of the relay_dedupe bucket."""
    with cluster(tmp_path) as servers:
        nc = await connect_until(",".join(s.url for s in servers))
        try:
            await SharedDeduplicator.open(nc, "node-0", replicas=3)
            info = await nc.jetstream(timeout=5).stream_info(f"KV_{DEDUPE_BUCKET}")
            assert info.config.num_replicas == 3
        finally:
            await nc.close()


async def test_a_leaf_with_its_own_domain_reads_the_hubs_registry_by_domain(
    tmp_path: Path,
) -> None:
    """On a leaf server, the relay reads the hub's registry when told the hub's JetStream domain,
    and loading through the leaf with the domain writes the hub's bucket, not a second one."""
    with hub_and_leaf(tmp_path, hub_domain="hub", leaf_domain="op0") as (hub, leaf):
        loaded = await asyncio.to_thread(
            relay, "registry", "load", str(EXAMPLE), "--nats", leaf.url, "--js-domain", "hub"
        )
        assert loaded.returncode == 0, loaded.stderr
        on_leaf = await connect_until(leaf.url)
        try:
            # The leaf's own JetStream has no registry: without the domain a node fails closed.
            with pytest.raises(nats.js.errors.BucketNotFoundError):
                await on_leaf.jetstream(timeout=5).key_value("relay_registry")
            cache = RegistryCache(js_domain="hub")
            await cache.start(on_leaf)
            try:
                view = await cache.wait_loaded(20.0)
                assert view.dons, cache.problem
            finally:
                await cache.stop()
        finally:
            await on_leaf.close()
        on_hub = await connect_until(hub.url)
        try:
            await on_hub.jetstream(timeout=5).key_value("relay_registry")  # it is the hub's
        finally:
            await on_hub.close()


async def test_relay_up_given_a_server_writes_no_registry(nats_server: NatsServer) -> None:
    """`relay up --nats URL` leaves a shared registry alone unless --seed names a file."""
    nc = await connect(nats_server.url, actor="test")
    try:
        result = await load_seed_file(nc, EXAMPLE, bucket="relay_registry")
        before = result.revision
        up = await asyncio.to_thread(
            relay, "up", "--nats", nats_server.url, "--once", "--actors", "verifier",
            "--metrics-port", "0",
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert "nothing written" in up.stdout
        kv = await nc.jetstream(timeout=5).key_value("relay_registry")
        assert (await kv.status()).stream_info.state.last_seq == before
    finally:
        await nc.close()
