"""The `enclave` user of the shipped nats.conf: the gateway's NATS front and nothing else.

Observed with the real credentials on a real nats-server, as in test_permissions.py: a request on
`relay.v1.<don>.gateway` reaches the gateway (its user answering in queue `gateway`) and comes
back; every other subject is refused by the server (a permissions violation, then a timeout).
"""

from __future__ import annotations

from collections.abc import Iterator

import nats.errors
import pytest

from schemas import rpc, subjects
from tests.integration.test_permissions import (
    DENIED_REQUEST_TIMEOUT_S,
    DISPATCH_SECRETS,
    DON,
    NATS_CONF,
    RPC,
    VAULT,
    VERIFY,
    WAIT_S,
    as_actor,
    responder,
)
from workers.runtime.natsserver import NatsServer

GATEWAY = subjects.gateway(DON)


@pytest.fixture(scope="module")
def conf_server() -> Iterator[NatsServer]:
    """A nats-server with the repo's nats.conf, shared by this module."""
    server = NatsServer(config_file=NATS_CONF, jetstream=True)
    server.start_sync()
    try:
        yield server
    finally:
        server.cleanup()


async def test_an_enclave_request_on_the_gateway_subject_is_answered_by_the_gateway(
    conf_server: NatsServer,
) -> None:
    """The enclave user publishes to relay.v1.<don>.gateway and reads the reply in its inbox."""
    async with (
        responder(conf_server, "gateway", GATEWAY, subjects.QUEUE_GATEWAY) as received,
        as_actor(conf_server, "enclave") as enclave,
    ):
        answer = await enclave.nc.request(GATEWAY, b'{"jsonrpc":"2.0"}', timeout=WAIT_S)
        assert answer.data == b"pong"
        assert received == [b'{"jsonrpc":"2.0"}']
        await enclave.assert_quiet()


@pytest.mark.parametrize(
    ("subject", "owner", "queue"),
    [
        pytest.param(RPC, "ingress", subjects.QUEUE_INGRESS, id="node-rpc"),
        pytest.param(VERIFY, "verifier", subjects.QUEUE_VERIFIER, id="verify"),
        pytest.param(
            DISPATCH_SECRETS,
            "dispatch-secrets",
            subjects.dispatch_queue(rpc.MethodSecretsGet),
            id="dispatch",
        ),
        pytest.param(VAULT, "vault", subjects.QUEUE_CAPABILITY, id="capability"),
    ],
)
async def test_an_enclave_cannot_reach_a_node_stage_or_capability_directly(
    conf_server: NatsServer, subject: str, owner: str, queue: str
) -> None:
    """With the real responder listening, the enclave's request is refused and never arrives."""
    async with (
        responder(conf_server, owner, subject, queue) as received,
        as_actor(conf_server, "enclave") as enclave,
    ):
        with pytest.raises(nats.errors.TimeoutError):
            await enclave.nc.request(subject, b"from the enclave", timeout=DENIED_REQUEST_TIMEOUT_S)
        await enclave.violation(f'publish to "{subject}"')
        assert received == []


@pytest.mark.parametrize(
    "subject",
    ["relay.>", subjects.gateway_responses(DON) + ".>", GATEWAY, "_INBOX_gateway.>", "$SRV.PING"],
)
async def test_an_enclave_cannot_listen_to_relay_traffic_or_other_inboxes(
    conf_server: NatsServer, subject: str
) -> None:
    """Subscribing to the node answers, the gateway front, another inbox or discovery is refused."""
    async with as_actor(conf_server, "enclave") as enclave:
        await enclave.nc.subscribe(subject)
        await enclave.violation(f'subscription to "{subject}"')


async def test_an_enclave_cannot_answer_as_the_gateway_front(conf_server: NatsServer) -> None:
    """Joining the gateway's queue group (to steal other enclaves' requests) is refused."""
    async with as_actor(conf_server, "enclave") as enclave:
        await enclave.nc.subscribe(GATEWAY, queue=subjects.QUEUE_GATEWAY)
        await enclave.violation(f'subscription to "{GATEWAY}"')
