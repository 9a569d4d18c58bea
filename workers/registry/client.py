"""Registry lookups for the actors that need them: in-process (default) or over NATS.

`local` embeds the same `RegistryCache` the registry actor runs (one KV watch per process, the
same pure lookups, the same fail-closed rules), so a lookup costs microseconds instead of a NATS
round trip on every request; `actor` asks the registry actor over `relay.v1.<don>.<node>.registry.*`
(for deployments that keep KV access to the registry actor alone). Select it with
`RELAY_REGISTRY_LOOKUPS=local|actor`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from nats.aio.client import Client

from schemas import bus, rpc, subjects
from workers.registry import actor as registry
from workers.runtime.bus import Service, StageTimeout, StageUnavailable, request_pure
from workers.runtime.settings import NodeSettings

log = logging.getLogger("relay.registry")


class RegistryLookups(Protocol):
    async def measurements(self, deadline: float) -> bus.RegistryReply: ...

    async def capability(self, capability_id: str, deadline: float) -> bus.RegistryReply: ...

    async def local_node(self, deadline: float) -> bus.RegistryReply: ...

    async def trust(self, deadline: float) -> bus.RegistryReply: ...

    async def close(self) -> None: ...


UNREACHABLE = "registry unreachable: "


def _unreachable(exc: Exception) -> bus.StageError:
    return bus.StageError(
        code=rpc.ErrInternal, message="internal error", detail=f"{UNREACHABLE}{exc}"
    )


class LocalRegistry:
    def __init__(self, settings: NodeSettings, cache: registry.RegistryCache) -> None:
        self._node = settings.node
        self._don = settings.don
        self._cache = cache

    @classmethod
    async def start(
        cls, nc: Client, settings: NodeSettings, *, load_timeout_s: float = 2.0
    ) -> LocalRegistry:
        """Start the watch and wait (bounded) for the first view, so that an actor that says it
        is ready does not fail its first requests closed merely because its cache is still empty.
        A bucket that is missing or slow is not fatal: lookups fail closed until it loads."""
        cache = registry.RegistryCache(js_domain=settings.js_domain)
        await cache.start(nc)
        try:
            await cache.wait_loaded(load_timeout_s)
        except TimeoutError:
            log.warning(
                "registry not loaded after %.1fs (%s); lookups fail closed until it is",
                load_timeout_s,
                cache.problem or "no answer yet",
            )
        return cls(settings, cache)

    async def measurements(self, deadline: float) -> bus.RegistryReply:
        return registry.measurements(await self._cache.view())

    async def capability(self, capability_id: str, deadline: float) -> bus.RegistryReply:
        return registry.capability(await self._cache.view(), capability_id)

    async def local_node(self, deadline: float) -> bus.RegistryReply:
        return registry.local_node(await self._cache.view(), self._node)

    async def trust(self, deadline: float) -> bus.RegistryReply:
        return registry.trust(await self._cache.view(), self._don, self._node)

    async def close(self) -> None:
        await self._cache.stop()

    def not_loaded(self) -> str | None:
        return self._cache.not_loaded()


class ActorRegistry:
    """Lookups as request/reply to the registry actor; lost attempts are retried in the budget."""

    def __init__(self, nc: Client, settings: NodeSettings) -> None:
        self._nc = nc
        self._settings = settings

    async def _ask(
        self, verb: str, message: bus.RegistryRequest, deadline: float
    ) -> bus.RegistryReply:
        subject = subjects.registry(self._settings.don, self._settings.node, verb)
        payload = bus.ENCODER.encode(message)
        try:
            data = await request_pure(
                self._nc,
                subject,
                payload,
                deadline=deadline,
                attempt_timeout_s=self._settings.stage_attempt_timeout_s,
            )
        except (StageTimeout, StageUnavailable) as exc:
            return _unreachable(exc)
        reply: bus.RegistryReply = bus.REGISTRY_REPLY_DECODER.decode(data)
        return reply

    async def measurements(self, deadline: float) -> bus.RegistryReply:
        return await self._ask("measurements", bus.MeasurementsRequest(), deadline)

    async def capability(self, capability_id: str, deadline: float) -> bus.RegistryReply:
        return await self._ask(
            "capability", bus.CapabilityRequest(capability_id=capability_id), deadline
        )

    async def local_node(self, deadline: float) -> bus.RegistryReply:
        return await self._ask("local-node", bus.LocalNodeRequest(), deadline)

    async def trust(self, deadline: float) -> bus.RegistryReply:
        return await self._ask("trust", bus.TrustRequest(don=self._settings.don), deadline)

    async def close(self) -> None:
        return None


def add_readiness(service: Service, lookups: RegistryLookups) -> None:
    """Make `service` not ready until the registry view it reads in-process is loaded (lookups
    through the registry actor depend on that actor's own readiness instead)."""
    if isinstance(lookups, LocalRegistry):
        service.add_readiness_check("registry", lookups.not_loaded)


async def open_registry(nc: Client, settings: NodeSettings) -> RegistryLookups:
    if settings.registry_lookups == "actor":
        return ActorRegistry(nc, settings)
    return await LocalRegistry.start(nc, settings)
