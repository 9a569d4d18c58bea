"""Registry seeding in the per-operator layout: each account (a node's operator, the gateway)
has its own JetStream and so its own `relay_registry` bucket, written by its own registry-admin."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from workers.registry.store import load_entries
from workers.runtime import credentials
from workers.runtime.bus import connect


async def seed_accounts(
    url: str, entries: Mapping[str, bytes], parties: Iterable[str], *, timeout_s: float = 30.0
) -> None:
    """Write `entries` into the registry bucket of every party's account."""
    for party in parties:
        user, password = credentials.credentials_for("registry-admin", party)
        admin = await connect(url, actor="registry-admin", user=user, password=password)
        try:
            await asyncio.wait_for(load_entries(admin, entries), timeout_s)
        finally:
            await admin.close()
