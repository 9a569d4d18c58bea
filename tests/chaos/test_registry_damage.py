"""Registry damage under load: the confidential-workflows config deleted or purged (JetStream KV
delete and purge markers), and every key deleted. The node fails closed: while the trusted
measurements are gone no request succeeds, each is answered -32603 within its budget; once the
registry is loaded again, requests succeed again within a bound.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js.kv import KeyValue

from schemas import rpc, subjects
from schemas.subjects import encode_token
from tests.chaos.cluster import DON, NODE, Cluster, Portal, client
from tests.chaos.load import open_loop, report, until
from tests.chaos.payloads import echo_is_correct, echo_request
from workers.registry.store import load_entries, open_bucket, read_entries, read_seed_file

pytestmark = pytest.mark.usefixtures("node")  # each fault test starts from a whole node

RATE, DURATION_S = 20.0, 2.0
SETTLE_BOUND_S = 10.0
"""How soon a change in the bucket must show in the node's answers (its watch is live)."""


def is_config_key(key: str) -> bool:
    return key.startswith("capabilities.") and key.endswith(
        encode_token(rpc.ConfidentialWorkflowsCapabilityID)
    )


async def delete_config(kv: KeyValue, keys: list[str]) -> None:
    for key in filter(is_config_key, keys):
        await kv.delete(key)


async def purge_config(kv: KeyValue, keys: list[str]) -> None:
    for key in filter(is_config_key, keys):
        await kv.purge(key)


async def delete_everything(kv: KeyValue, keys: list[str]) -> None:
    for key in keys:
        await kv.delete(key)


DAMAGE: dict[str, Callable[[KeyValue, list[str]], Coroutine[Any, Any, None]]] = {
    "delete-config": delete_config,
    "purge-config": purge_config,
    "delete-every-key": delete_everything,
}


async def answer_of(nc: Client, cluster: Cluster, request_id: str) -> dict[str, object]:
    raw = echo_request(cluster.chain, request_id)
    reply = await nc.request(subjects.rpc(DON, NODE), raw, timeout=5.0)
    body: dict[str, object] = json.loads(reply.data)
    return body


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_registry_damage_fails_closed_and_a_reload_restores_service(
    portal: Portal, gateway_nc: Client, cluster: Cluster, damage: str
) -> None:
    """While the registry is damaged every request gets -32603 (none succeeds, none is lost);
    after `relay registry load` of the seed, every request succeeds again."""
    admin = portal.run(client(cluster.url, "registry-admin"))
    try:
        kv, _ = portal.run(open_bucket(admin, create=False))
        entries, _ = portal.run(read_entries(kv))
        assert any(is_config_key(k) for k in entries), sorted(entries)
        portal.run(DAMAGE[damage](kv, sorted(entries)))

        async def failing_closed() -> bool:
            body = await answer_of(gateway_nc, cluster, "probe-damaged")
            return body.get("error") == {"code": rpc.ErrInternal, "message": "internal error"}

        settle_s = portal.run(until(failing_closed, SETTLE_BOUND_S), SETTLE_BOUND_S + 10)
        make = lambda rid: (echo_request(cluster.chain, rid), echo_is_correct)  # noqa: E731
        damaged = portal.run(
            open_loop(gateway_nc, make, rate=RATE, duration_s=DURATION_S, prefix=f"{damage}-x"), 60
        )
        report("registry-damaged", damaged, damage=damage, fails_closed_after_s=round(settle_s, 2))
        assert damaged.spec_error == damaged.sent == int(RATE * DURATION_S), damaged.summary()
        assert damaged.late == 0

        portal.run(load_entries(admin, read_seed_file(cluster.seed)))

        async def serving() -> bool:
            body = await answer_of(gateway_nc, cluster, "probe-restored")
            return echo_is_correct("probe-restored", body)

        restore_s = portal.run(until(serving, SETTLE_BOUND_S), SETTLE_BOUND_S + 10)
        restored = portal.run(
            open_loop(gateway_nc, make, rate=RATE, duration_s=DURATION_S, prefix=f"{damage}-ok"), 60
        )
        report("registry-restored", restored, damage=damage, serves_after_s=round(restore_s, 2))
        assert restored.correct == restored.sent, (restored.summary(), restored.wrong_samples)
    finally:
        portal.run(load_entries(admin, read_seed_file(cluster.seed)))
        portal.run(admin.close())
