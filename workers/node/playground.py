"""A local relay DON for enclave developers, in this event loop (docs/enclave-client.md).

`local_relay()` starts what an enclave program talks to, on 127.0.0.1 only: an embedded
nats-server with the repo's nats.conf, the registry seeded, `nodes` relay nodes (every actor, each
its own NATS user), the reference vault and echo, and the gateway with its HTTP front. The nodes
trust a fresh simulated attestation chain (its root as an explicit development root), which the
playground hands out as `source`. Under `protocol="current"` each node signs with its own key
(0600 files in a temp dir), the gateway bundles (G3), and `enclave_config` and `authorize()` give
the enclave what it needs. Everything it started is stopped on exit. `relay demo --protocol
current` runs on it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schemas import current
from workers.attestation.testchain import TestChain
from workers.enclave.attest import SimulatedSource
from workers.enclave.workflow_sim import signed_compute_requests
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.http import HttpFront
from workers.gateway.membership import RegistryMembership
from workers.gateway.ratelimit import RateLimit
from workers.node.process import NODE_ACTORS, NodeProcess, embedded_server
from workers.protocol import enclave_config, signed
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime import nodekey
from workers.runtime.bus import connect
from workers.runtime.credentials import credentials_for
from workers.runtime.settings import NodeSettings

DON = "relay-don"
STAGES = tuple(a for a in NODE_ACTORS if a != "ingress")
MASTER_PUBLIC_KEY = b"playground-master-public-key"  # not checked by relays (10.7); no TDH2 here


@dataclass
class LocalRelay:
    """What the playground started, and what an enclave needs to talk to it."""

    url: str
    """The gateway's HTTP front."""
    nats_url: str
    don: str
    protocol: Literal["n1", "current"]
    source: SimulatedSource
    """Attestation documents the nodes accept (their development root is its chain's)."""
    nodes: tuple[str, ...]
    f: int
    keys: dict[str, signed.NodeKey] = field(default_factory=dict)
    """current: each node's signing key, by address."""
    workflow_keys: list[signed.NodeKey] = field(default_factory=list)
    """current: the simulated Workflow DON's keys (F=1 of 4)."""
    ingresses: dict[str, NodeProcess] = field(default_factory=dict)
    """Each node's ingress, to stop one (a node down) or replace it."""

    @property
    def enclave_config(self) -> current.EnclaveConfig | None:
        """current: the config an enclave of this DON holds (its signers and F)."""
        if not self.keys:
            return None
        return enclave_config.for_don(
            [k.public_key for k in self.keys.values()], self.f, MASTER_PUBLIC_KEY, 1
        )

    def authorize(
        self, *, workflow_id: str, owner: str, execution_id: str, secret_keys: Sequence[str]
    ) -> tuple[current.SignedComputeRequest, ...]:
        """current: F+1 Workflow-DON signatures on the compute request a secrets call needs."""
        return signed_compute_requests(
            self.workflow_keys[:2],
            workflow_id=workflow_id,
            owner=owner,
            execution_id=execution_id,
            secret_keys=secret_keys,
        )


@contextlib.asynccontextmanager
async def local_relay(
    *,
    protocol: Literal["n1", "current"] = "n1",
    nodes: int = 4,
    f: int = 1,
    quorum_grace_s: float = 2.0,
    request_timeout_s: float = 10.0,
) -> AsyncIterator[LocalRelay]:
    addresses = tuple(f"node-{i}" for i in range(nodes))
    server = embedded_server()
    if server.config_file is None:
        os.environ["RELAY_NATS_NO_AUTH"] = "1"  # no users configured: connect without them
    await server.start()
    procs: list[NodeProcess] = []
    closers: list[Callable[[], Awaitable[Any]]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="relay-playground-") as tmp:
            chain = TestChain()
            root = Path(tmp) / "test-root.pem"
            root.write_bytes(chain.root_pem)
            relay = LocalRelay(
                url="",
                nats_url=server.url,
                don=DON,
                protocol=protocol,
                source=SimulatedSource(chain),
                nodes=addresses,
                f=f,
            )
            if protocol == "current":
                relay.keys = {n: nodekey.write_new(Path(tmp) / f"{n}.key") for n in addresses}
                relay.workflow_keys = [signed.NodeKey(os.urandom(32)) for _ in range(4)]
            seed = seed_with_measurements(
                [chain.trusted_values_json()],
                members=addresses,
                f=f,
                peer_ids=[relay.keys[n].public_key for n in addresses] if relay.keys else None,
                workflow_peer_ids=[k.public_key for k in relay.workflow_keys] or None,
            )
            # Each operator syncs the registry into its own account's bucket; the gateway too.
            for party in (*addresses, "gateway"):
                user, password = credentials_for("registry-admin", party)
                admin = await connect(
                    server.url, actor="registry-admin", user=user, password=password
                )
                try:
                    await load_entries(admin, seed_entries_for(seed))
                finally:
                    await admin.close()
            for node in addresses:
                settings = NodeSettings(
                    don=DON,
                    node=node,
                    nats_url=server.url,
                    dev_root_pem=root,
                    protocol=protocol,
                    node_key=Path(tmp) / f"{node}.key" if relay.keys else None,
                )
                # The ingress apart, so a test or the demo can stop or replace it alone.
                for actors in (STAGES, ("ingress",)):
                    proc = NodeProcess(settings, actors=actors)
                    procs.append(proc)
                    await proc.start()
                relay.ingresses[node] = procs[-1]
            references = NodeProcess(NodeSettings(nats_url=server.url), actors=("vault", "echo"))
            procs.append(references)
            await references.start()
            relay.url = await _gateway(relay, closers, quorum_grace_s, request_timeout_s)
            yield relay
    finally:
        for close in closers:
            with contextlib.suppress(Exception):  # cleanup goes on whatever one closer does
                await close()
        for proc in reversed(procs):
            await proc.stop()
        await server.stop()
        server.cleanup()


async def _gateway(
    relay: LocalRelay,
    closers: list[Callable[[], Awaitable[Any]]],
    grace_s: float,
    timeout_s: float,
) -> str:
    user, password = credentials_for("gateway")
    nc = await connect(relay.nats_url, actor="gateway", user=user, password=password)
    closers.append(nc.close)
    membership = RegistryMembership(relay.don)
    await membership.start(nc)
    closers.insert(0, membership.stop)
    gateway = GatewayActor(
        nc,
        GatewaySettings(
            don=relay.don,
            handler=HandlerConfig(
                protocol=relay.protocol,
                request_timeout_s=timeout_s,
                quorum_grace_s=grace_s,
                # Upstream's limits (50 node answers/s in all, 10 per node) are for production:
                # a developer's loop of back-to-back calls would be throttled into expiries.
                global_rate=RateLimit(rate=1000.0, burst=1000),
                per_node_rate=RateLimit(rate=250.0, burst=250),
            ),
            sweep_interval_s=0.25,
        ),
        membership,
    )
    await gateway.start()
    closers.insert(0, gateway.stop)
    front = HttpFront(gateway.serve, host="127.0.0.1", port=0)
    await front.start()
    closers.insert(0, front.close)
    closers.insert(0, front.stop_listening)
    return f"http://127.0.0.1:{front.port}/"


__all__ = ["DON", "LocalRelay", "local_relay"]
