"""One relay node: its actors, each on its own NATS connection, in one process or one per process.

`ALL_ACTORS` names every actor `relay worker <actor>` can run. `start_actor` connects one actor as its
own NATS user and starts it; `NodeProcess` runs the actors of one node in the current event loop
(tests and the demo); `relay up` runs each actor as its own process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.client import Client

from workers.runtime.bus import Service, connect
from workers.runtime.credentials import credentials_for
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings
from workers.runtime.telemetry import RelayMetrics

log = logging.getLogger("relay.node")

REPO_ROOT = Path(__file__).resolve().parents[2]

Runner = Callable[[Client, NodeSettings, RelayMetrics | None], Awaitable[Service]]


async def _ingress(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None) -> Service:
    from workers.ingress import actor as ingress

    return await ingress.run(nc, settings, metrics)


async def _verifier(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None) -> Service:
    from workers.verifier import actor as verifier

    return await verifier.run(nc, settings)


async def _registry(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None) -> Service:
    from workers.registry import actor as registry

    return await registry.run(nc, settings)


async def _dispatch_secrets(
    nc: Client, settings: NodeSettings, metrics: RelayMetrics | None
) -> Service:
    from workers.dispatch import secrets as dispatch_secrets

    return await dispatch_secrets.run(nc, settings)


async def _dispatch_capability(
    nc: Client, settings: NodeSettings, metrics: RelayMetrics | None
) -> Service:
    from workers.dispatch import capability as dispatch_capability

    return await dispatch_capability.run(nc, settings)


async def _vault(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None) -> Service:
    from workers.reference import vault as vault_ref

    secrets = settings.extra.get("vault_secrets")
    return await vault_ref.run(nc, Path(secrets) if secrets else vault_ref.secrets_file_from_env())


async def _echo(nc: Client, settings: NodeSettings, metrics: RelayMetrics | None) -> Service:
    from workers.reference import echo as echo_ref

    return await echo_ref.run(nc)


NODE_ACTORS: dict[str, Runner] = {
    "registry": _registry,
    "verifier": _verifier,
    "dispatch-secrets": _dispatch_secrets,
    "dispatch-capability": _dispatch_capability,
    "ingress": _ingress,
}
"""The actors of one relay node, in start order (ingress last: it needs the others)."""

REFERENCE_ACTORS: dict[str, Runner] = {"vault": _vault, "echo": _echo}
"""Reference DON workers for demos and tests; they serve every node (cap.v1 subjects)."""

ALL_ACTORS: dict[str, Runner] = {**NODE_ACTORS, **REFERENCE_ACTORS}


@dataclass
class RunningActor:
    name: str
    nc: Client
    service: Service


@dataclass
class NodeProcess:
    """Some or all actors of one node, running in this event loop."""

    settings: NodeSettings
    actors: Sequence[str] = tuple(NODE_ACTORS)
    metrics: RelayMetrics | None = None
    running: list[RunningActor] = field(default_factory=list)

    async def start(self) -> None:
        try:
            for name in self.actors:
                self.running.append(await start_actor(name, self.settings, self.metrics))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        # Ingress first, so nothing new enters while the stages behind it finish their work.
        for actor in reversed(self.running):
            if actor.name == "ingress":
                await actor.service.stop()
        for actor in reversed(self.running):
            if actor.name != "ingress":
                await actor.service.stop()
        self.running.clear()


async def start_actor(
    name: str, settings: NodeSettings, metrics: RelayMetrics | None = None
) -> RunningActor:
    runner = ALL_ACTORS.get(name)
    if runner is None:
        raise ValueError(f"unknown actor {name!r}; choose from {', '.join(sorted(ALL_ACTORS))}")
    # A node's actors are users of its operator's account (the reference workers, of their own).
    user, password = credentials_for(name, None if name in REFERENCE_ACTORS else settings.node)
    nc = await connect(settings.nats_url, actor=name, user=user, password=password)
    try:
        service = await runner(nc, settings, metrics)
    except BaseException:
        await nc.close()
        raise
    log.info("actor %s of %s/%s started", name, settings.don, settings.node)
    return RunningActor(name=name, nc=nc, service=service)


async def wait_forever() -> None:
    await asyncio.Event().wait()


def embedded_server() -> NatsServer:
    """The local nats-server `relay up` and the demo use: the repo's nats.conf when present."""
    config = REPO_ROOT / "nats.conf"
    return NatsServer(config_file=config if config.is_file() else None, jetstream=True)


async def seed_registry(
    url: str,
    seed_file: Path,
    *,
    party: str | None = None,
    replicas: int | None = None,
    domain: str | None = None,
) -> None:
    """Write a seed file into a party's registry bucket (a node's, by default RELAY_NODE's, or
    the gateway's), as `relay registry load` does."""
    from workers.registry.store import load_seed_file

    user, password = credentials_for("registry-admin", party)
    nc = await connect(url, actor="registry-admin", user=user, password=password)
    try:
        await load_seed_file(nc, seed_file, replicas=replicas, domain=domain)
    finally:
        await nc.close()
