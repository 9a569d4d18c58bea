"""The chaos suite: every test here carries the `chaos` marker (`-m 'not chaos'` skips it).

Hypothesis runs derandomized with a bounded number of examples, so CI sees the same inputs on
every run; `RELAY_FUZZ_EXAMPLES=<n>` runs a longer campaign (docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from tests.chaos.cluster import Cluster, Portal, client
from tests.chaos.gatewayproc import GatewayRunner
from workers.attestation.testchain import TestChain

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture(scope="session")
def portal() -> Iterator[Portal]:
    """The event loop the chaos tests' NATS clients and load run on."""
    running = Portal()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def chaos_chain() -> TestChain:
    return TestChain()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, chaos_chain: TestChain) -> Iterator[Cluster]:
    """One node of `relay worker` processes on a nats-server with nats.conf, shared by the
    chaos tests (each leaves it whole: every actor running, the registry seeded)."""
    node = Cluster(tmp_path_factory.mktemp("chaos"), chaos_chain)
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def gateway_nc(portal: Portal, cluster: Cluster) -> Iterator[Client]:
    """A client as the gateway user, the one that sends the node its rpcs."""
    nc = portal.run(client(cluster.url))
    try:
        yield nc
    finally:
        portal.run(nc.close())


@pytest.fixture(scope="session")
def gateway(portal: Portal, cluster: Cluster) -> Iterator[GatewayRunner]:
    """`relay gateway` (HTTP) in front of the chaos node, restarted by tests that stop it."""
    runner = GatewayRunner(cluster)
    runner.start(portal)
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def node(cluster: Cluster) -> Cluster:
    """The chaos node made whole before a fault test, whatever an earlier failure left behind."""
    cluster.heal()
    return cluster
