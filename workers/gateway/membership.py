"""The gateway's view of the relay DON (F and members) from the registry's KV bucket.

It follows the same `RegistryCache` the registry actor uses, so a membership change written with
`relay registry load` reaches the gateway within a second. Until the bucket was read, or while
the DON is missing from it, requests fail closed (MembershipUnavailable).
"""

from __future__ import annotations

from nats.aio.client import Client

from workers.gateway.handler import DonConfig, MembershipUnavailable
from workers.registry.actor import RegistryCache
from workers.registry.view import RegistryView


class RegistryMembership:
    def __init__(
        self, don_name: str, cache: RegistryCache | None = None, *, js_domain: str | None = None
    ) -> None:
        self._name = don_name
        self._cache = cache or RegistryCache(js_domain=js_domain)
        self._don: DonConfig | None = None
        self._cache.add_listener(self._update)

    def _update(self, view: RegistryView) -> None:
        for don in view.dons.values():
            if don.name == self._name:
                self._don = DonConfig(name=don.name, f=don.f, members=tuple(don.members))
                return
        self._don = None

    async def start(self, nc: Client, *, wait_s: float = 10.0) -> None:
        await self._cache.start(nc)
        self._update(await self._cache.wait_loaded(wait_s))

    async def stop(self) -> None:
        await self._cache.stop()

    def current(self) -> DonConfig:
        if self._don is None:
            raise MembershipUnavailable(f"relay DON {self._name!r} is not in the registry")
        return self._don
