"""Several nats-servers from the pinned wheel on free loopback ports: a routed cluster, or a hub
with a leaf server, each with JetStream (and a domain where asked). Every server is stopped by
its PID when the context ends."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from nats.aio.client import Client

from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer, free_port


def _server(tmp: Path, name: str, body: str) -> NatsServer:
    config = tmp / f"{name}.conf"
    config.write_text(f"server_name: {name}\n{body}\n")
    return NatsServer(config_file=config, jetstream=True, store_dir=tmp / f"{name}-js")


@contextmanager
def cluster(tmp: Path, size: int = 3) -> Iterator[list[NatsServer]]:
    """`size` servers routed to each other (one JetStream cluster, so R3 streams can exist)."""
    route_ports = [free_port() for _ in range(size)]
    routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in route_ports)
    servers = [
        _server(
            tmp,
            f"n{i}",
            f"cluster {{ name: relay-test, listen: 127.0.0.1:{port}, routes: [{routes}] }}",
        )
        for i, port in enumerate(route_ports)
    ]
    try:
        # A clustered server's JetStream needs a quorum of its peers: start all, then wait.
        for server in servers:
            server.spawn()
        for server in servers:
            server.wait_ready(30.0)
        _wait_healthy(servers, timeout_s=30.0)
        yield servers
    finally:
        for server in servers:
            server.cleanup()


def _wait_healthy(servers: list[NatsServer], *, timeout_s: float) -> None:
    """Until every server's full /healthz is 200: JetStream's meta group has a leader and the
    server is current with it (before that, API calls time out)."""
    deadline = time.monotonic() + timeout_s
    pending = list(servers)
    while pending:
        assert time.monotonic() < deadline, f"cluster not healthy after {timeout_s}s"
        server = pending[0]
        try:
            url = f"http://127.0.0.1:{server.monitor_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    pending.pop(0)
                    continue
        except OSError:
            pass
        time.sleep(0.1)


@contextmanager
def hub_and_leaf(
    tmp: Path, *, hub_domain: str, leaf_domain: str
) -> Iterator[tuple[NatsServer, NatsServer]]:
    """A hub with JetStream domain `hub_domain` and one leaf server (its own JetStream, domain
    `leaf_domain`) connected to it: the usual layout with one leaf per operator."""
    leaf_port = free_port()
    hub = _server(
        tmp,
        "hub",
        f"jetstream {{ domain: {hub_domain} }}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}",
    )
    leaf = _server(
        tmp,
        "leaf",
        f"jetstream {{ domain: {leaf_domain} }}\n"
        f"leafnodes {{ remotes: [ {{ url: nats-leaf://127.0.0.1:{leaf_port} }} ] }}",
    )
    try:
        hub.start_sync()
        leaf.start_sync()
        yield hub, leaf
    finally:
        leaf.cleanup()
        hub.cleanup()


async def connect_until(url: str, *, actor: str = "test", timeout_s: float = 20.0) -> Client:
    """A client on `url` (a server list is fine)."""
    return await connect(url, actor=actor, initial_timeout_s=timeout_s)


async def poll(check: object, *, timeout_s: float, interval_s: float = 0.2) -> None:
    """Await `check()` until it returns truthy or raise AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if await check():  # type: ignore[operator]
                return
        except Exception as exc:  # the cluster is settling: try again
            last = exc
        await asyncio.sleep(interval_s)
    raise AssertionError(f"not true within {timeout_s}s (last error: {last!r})")
