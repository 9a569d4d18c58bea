"""Shared fixtures: a real nats-server on loopback (from the pinned wheel) and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from workers.runtime.bus import connect
from workers.runtime.logs import TextFormatter
from workers.runtime.natsserver import NatsServer

REPO_ROOT = Path(__file__).resolve().parents[1]
NITRO_VECTORS = REPO_ROOT / "tests" / "vectors" / "nitro"


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    """A JetStream-enabled nats-server on free loopback ports, shared by one test module."""
    server = NatsServer(jetstream=True)
    server.start_sync()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client connected to the module's server, closed after the test."""
    client = await connect(nats_server.url, actor="test")
    try:
        yield client
    finally:
        if not client.is_closed:
            await client.close()


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Show the `extra` fields of log records (the ingress's `err` detail) in failure reports."""
    plugin = config.pluginmanager.get_plugin("logging-plugin")
    if plugin is None:
        return
    formatter = TextFormatter("test")
    for name in ("report_handler", "caplog_handler"):
        handler = getattr(plugin, name, None)
        if handler is not None:
            handler.setFormatter(formatter)
