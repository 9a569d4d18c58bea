"""The current protocol end to end on real nodes: four signing nodes (each actor its own NATS
user of the repo's nats.conf), the G3 gateway, and the enclave client over NATS as `enclave`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from nats.aio.client import Client

from tests.integration.test_permissions import NATS_CONF
from workers.attestation.testchain import TestChain
from workers.enclave import nats_transport
from workers.enclave.attest import SimulatedSource
from workers.enclave.client import EnclaveClient
from workers.enclave.workflow_sim import signed_compute_requests
from workers.gateway.actor import GatewayActor, GatewaySettings
from workers.gateway.handler import HandlerConfig
from workers.gateway.membership import RegistryMembership
from workers.node.process import NODE_ACTORS, REFERENCE_ACTORS, NodeProcess
from workers.protocol import enclave_config, signed
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime import credentials, nodekey
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

pytestmark = pytest.mark.asyncio(loop_scope="module")

DON = "relay-don"
NODES = ("node-0", "node-1", "node-2", "node-3")
OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"
STAGES = tuple(a for a in NODE_ACTORS if a != "ingress")
WAIT_S = 15
START_S = 60  # a bound for starting the DON on a machine shared by many, not an expectation
STRING_VALUE = "type.googleapis.com/google.protobuf.StringValue"


@dataclass
class Don:
    server: NatsServer
    chain: TestChain
    keys: dict[str, signed.NodeKey]
    workflow: list[signed.NodeKey]
    ingresses: dict[str, NodeProcess]
    gateway: GatewayActor

    def client(self, execution_id: str) -> EnclaveClient:
        config = enclave_config.for_don([k.public_key for k in self.keys.values()], 1, b"mpk", 1)
        return EnclaveClient(
            source=SimulatedSource(self.chain),
            workflow_id="wf-current",
            owner=OWNER,
            execution_id=execution_id,
            enclave_config=config,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def don(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Don]:
    tmp = tmp_path_factory.mktemp("current-don")
    server = NatsServer(config_file=NATS_CONF, jetstream=True)
    await server.start()
    chain = TestChain()
    (tmp / "root.pem").write_bytes(chain.root_pem)
    keys = {n: nodekey.write_new(tmp / f"{n}.key") for n in NODES}
    workflow = [signed.NodeKey(os.urandom(32)) for _ in range(4)]
    seed = seed_with_measurements(
        [chain.trusted_values_json()],
        members=NODES,
        f=1,
        peer_ids=[keys[n].public_key for n in NODES],
        workflow_peer_ids=[k.public_key for k in workflow],
    )
    # Each node's operator and the gateway hold the registry in their own accounts.
    for party in (*NODES, "gateway"):
        user, password = credentials.credentials_for("registry-admin", party)
        admin = await connect(server.url, actor="registry-admin", user=user, password=password)
        await asyncio.wait_for(load_entries(admin, seed_entries_for(seed)), START_S)
        await admin.close()
    procs: list[NodeProcess] = []
    ingresses: dict[str, NodeProcess] = {}
    user, password = credentials.credentials_for("gateway")
    gw_nc = await connect(server.url, actor="gateway", user=user, password=password)
    membership = RegistryMembership(DON)
    gateway: GatewayActor | None = None
    try:
        reference = NodeProcess(NodeSettings(nats_url=server.url), actors=tuple(REFERENCE_ACTORS))
        await reference.start()
        procs.append(reference)
        for node in NODES:
            settings = NodeSettings(
                don=DON,
                node=node,
                nats_url=server.url,
                dev_root_pem=tmp / "root.pem",
                protocol="current",
                node_key=tmp / f"{node}.key",
                request_timeout_s=5.0,
            )
            for actors in (STAGES, ("ingress",)):
                proc = NodeProcess(settings, actors=actors)
                await asyncio.wait_for(proc.start(), START_S)
                procs.append(proc)
            ingresses[node] = procs[-1]
        await membership.start(gw_nc, wait_s=START_S)
        handler = HandlerConfig(protocol="current", request_timeout_s=8.0, quorum_grace_s=5.0)
        gateway = GatewayActor(
            gw_nc, GatewaySettings(don=DON, handler=handler, sweep_interval_s=0.2), membership
        )
        await gateway.start()
        yield Don(server, chain, keys, workflow, ingresses, gateway)
    finally:
        if gateway is not None:
            await gateway.stop()
        await membership.stop()
        await gw_nc.close()
        for proc in reversed(procs):
            await proc.stop()
        await server.stop()
        server.cleanup()


async def enclave_transport(don: Don) -> tuple[nats_transport.NatsTransport, Client]:
    user, password = credentials.credentials_for("enclave")
    nc = await nats_transport.connect(don.server.url, user=user, password=password)
    return nats_transport.NatsTransport(nc, DON, timeout_s=WAIT_S), nc


async def test_a_secret_and_an_echo_are_picked_from_real_signed_bundles(don: Don) -> None:
    """Secrets (with two Workflow-DON signatures) and echo, each from a G3 bundle of real nodes."""
    transport, nc = await enclave_transport(don)
    try:
        client = don.client("00" * 31 + "10")
        authorization = signed_compute_requests(
            don.workflow[:2],
            workflow_id="wf-current",
            owner=OWNER,
            execution_id="00" * 31 + "10",
            secret_keys=["API_KEY"],
        )
        call = client.secrets_call([("main", "API_KEY")], signed_compute_requests=authorization)
        (secret,) = client.open_secrets(call, await transport.send(call.body))
        assert secret.value == b"s3cr3t-api-key-for-the-demo"
        echo = client.capability_call(
            "echo@1.0.0", "echo", type_url=STRING_VALUE, value=b"\n\x02hi"
        )
        answer = client.open_capability(echo, await transport.send(echo.body))
        assert (answer.type_url, answer.value) == (STRING_VALUE, b"\n\x02hi")
    finally:
        await nc.close()


async def test_with_two_nodes_down_the_two_left_are_forwarded_at_once(don: Don) -> None:
    """node-2 and node-3 stop their ingress (failed sends): both signed answers of the reachable
    nodes are forwarded without waiting for the grace, and F+1 = 2 valid signers suffice."""
    for node in ("node-2", "node-3"):
        await don.ingresses[node].stop()
    transport, nc = await enclave_transport(don)
    try:
        client = don.client("00" * 31 + "11")
        call = client.capability_call("echo@1.0.0", "echo", type_url=STRING_VALUE, value=b"\n\x01x")
        started = asyncio.get_running_loop().time()
        answer = client.open_capability(call, await transport.send(call.body))
        assert answer.value == b"\n\x01x"
        assert asyncio.get_running_loop().time() - started < 4  # well inside the 5 s grace
    finally:
        await nc.close()
