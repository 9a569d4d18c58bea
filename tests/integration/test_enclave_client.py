"""The enclave client library against a real node and the real gateway, over both fronts.

A nats-server with the repo's nats.conf, every node actor and the reference vault and echo as
their own users, the gateway as `gateway`: the client sends over HTTP (the gateway's HTTP front)
and over NATS (as the `enclave` user), and opens what comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from google.protobuf import any_pb2, wrappers_pb2

from tests.integration.test_permissions import DON, NATS_CONF, NODE, OWNER, gateway_actor
from workers.attestation.testchain import TestChain, fake_pcrs
from workers.enclave import answers, nats_transport
from workers.enclave.attest import SimulatedSource
from workers.enclave.client import EnclaveClient
from workers.enclave.errors import RelayError, TransportError
from workers.enclave.http import HttpTransport
from workers.gateway.http import HttpFront
from workers.node.process import NODE_ACTORS, REFERENCE_ACTORS, NodeProcess
from workers.registry.devseed import seed_entries_for, seed_with_measurements
from workers.registry.store import load_entries
from workers.runtime import credentials
from workers.runtime.bus import connect
from workers.runtime.natsserver import NatsServer
from workers.runtime.settings import NodeSettings

WAIT_S = 10
START_S = 60  # a bound for starting the node on a machine shared by many, not an expectation


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    server = NatsServer(config_file=NATS_CONF, jetstream=True)
    server.start_sync()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


@pytest.fixture
async def node(server: NatsServer, chain: TestChain, tmp_path: Path) -> AsyncIterator[NodeProcess]:
    """One node (F=0) with every actor, the reference vault and echo, the registry seeded."""
    seed = seed_with_measurements([chain.trusted_values_json()], members=(NODE,), f=0)
    # The node's operator and the gateway each hold the registry in their own account.
    for party in (NODE, "gateway"):
        user, password = credentials.credentials_for("registry-admin", party)
        admin = await connect(server.url, actor="registry-admin", user=user, password=password)
        await asyncio.wait_for(load_entries(admin, seed_entries_for(seed)), START_S)
        await admin.close()
    root = tmp_path / "root.pem"
    root.write_bytes(chain.root_pem)
    proc = NodeProcess(
        NodeSettings(
            don=DON, node=NODE, nats_url=server.url, dev_root_pem=root, request_timeout_s=5.0
        ),
        actors=(*REFERENCE_ACTORS, *NODE_ACTORS),
    )
    await asyncio.wait_for(proc.start(), START_S)
    try:
        yield proc
    finally:
        await proc.stop()


def client(chain: TestChain, pcrs: dict[int, bytes] | None = None) -> EnclaveClient:
    return EnclaveClient(
        source=SimulatedSource(chain, pcrs),
        workflow_id="wf-enclave-client",
        owner=OWNER,
        execution_id="00" * 32,
    )


@pytest.mark.usefixtures("node")
async def test_the_client_opens_a_secret_and_reads_an_echo_over_the_http_front(
    server: NatsServer, chain: TestChain
) -> None:
    """get_secrets and execute through HttpTransport: the example secret, the echoed Any."""
    async with gateway_actor(server) as gateway:
        front = HttpFront(gateway.serve, host="127.0.0.1", port=0)
        await front.start()
        try:
            http = HttpTransport(f"http://127.0.0.1:{front.port}/", timeout_s=WAIT_S)
            enclave = client(chain)
            (secret,) = await asyncio.to_thread(enclave.get_secrets, http, [("", "API_KEY")])
            assert secret.value == b"s3cr3t-api-key-for-the-demo"
            inner = any_pb2.Any()
            inner.Pack(wrappers_pb2.StringValue(value="hi"))
            answer = await asyncio.to_thread(
                enclave.execute,
                http,
                "echo@1.0.0",
                "echo",
                type_url=inner.type_url,
                value=inner.value,
            )
            assert (answer.type_url, answer.value) == (inner.type_url, inner.value)
            failed = await asyncio.to_thread(enclave.execute, http, "echo@1.0.0", "fail")
            assert failed.error == "execution failed"
        finally:
            await front.stop_listening()
            await front.close()


@pytest.mark.usefixtures("node")
async def test_the_client_gets_its_answers_over_nats_as_the_enclave_user(
    server: NatsServer, chain: TestChain
) -> None:
    """NatsTransport as user `enclave`: a secret opens; an untrusted image is a relay error."""
    user, password = credentials.credentials_for("enclave")
    nc = await nats_transport.connect(server.url, user=user, password=password)
    try:
        async with gateway_actor(server):
            transport = nats_transport.NatsTransport(nc, DON, timeout_s=WAIT_S)
            enclave = client(chain)
            call = enclave.secrets_call([("main", "DB_PASSWORD")])
            (secret,) = enclave.open_secrets(call, await transport.send(call.body))
            assert secret.value == b"correct horse battery staple"
            stranger = client(chain, fake_pcrs("unknown-image"))
            refused = stranger.capability_call("echo@1.0.0", "echo")
            with pytest.raises(RelayError) as caught:
                stranger.open_capability(refused, await transport.send(refused.body))
            assert (caught.value.code, caught.value.message) == (-32603, "internal error")
    finally:
        await nc.close()


async def test_a_gateway_refusal_with_an_http_error_status_still_reaches_the_client_as_json_rpc(
    server: NatsServer,
) -> None:
    """HTTP 400 for an empty id: HttpTransport returns the body, result_of raises RelayError."""
    async with gateway_actor(server) as gateway:
        front = HttpFront(gateway.serve, host="127.0.0.1", port=0)
        await front.start()
        try:
            http = HttpTransport(f"http://127.0.0.1:{front.port}/", timeout_s=WAIT_S)
            body = b'{"jsonrpc":"2.0","id":"","method":"confidential.secrets.get","params":{}}'
            answer = await asyncio.to_thread(http.send, body)
            with pytest.raises(RelayError) as caught:
                answers.result_of(answer, request_id="")
            assert (caught.value.code, caught.value.message) == (
                -32600,
                "request ID cannot be empty",
            )
            closed = HttpTransport("http://127.0.0.1:9/", timeout_s=2)
            with pytest.raises(TransportError):
                await asyncio.to_thread(closed.send, body)
        finally:
            await front.stop_listening()
            await front.close()
