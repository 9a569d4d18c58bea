"""Fixtures of the integration tests that run one real node behind fake DONs, one per module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.integration.node_errors_support import Relay, relay_node
from workers.attestation.testchain import TestChain
from workers.runtime.natsserver import NatsServer


@pytest.fixture(scope="module")
def relay_chain() -> TestChain:
    """The module's test attestation chain (its root is the node's development root)."""
    return TestChain()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay_module(
    nats_server: NatsServer, relay_chain: TestChain, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Relay]:
    """A node of real actors with a fake vault and a fake capability, for the whole module."""
    root = tmp_path_factory.mktemp("root") / "root.pem"
    root.write_bytes(relay_chain.root_pem)
    async with relay_node(nats_server, relay_chain, root) as relay:
        yield relay


@pytest.fixture
def relay(relay_module: Relay) -> Relay:
    """The module's node with its fakes back at their defaults (upstream's vault fixture)."""
    relay_module.vault.reset()
    relay_module.cap.reset()
    return relay_module
