"""Liveness and readiness of one actor process, served over HTTP for orchestrator probes.

`GET /livez` and `GET /readyz` answer 200 or 503 with a JSON body naming each check; the
interface and why it is HTTP rather than an exec probe are in docs/operations.md. The server
runs on the actor's own event loop on purpose: a wedged loop cannot answer, so the probe's
timeout fails liveness exactly when the actor cannot serve.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("relay.health")

OK = "ok"
DEFAULT_DISCONNECTED_GRACE_S = 60.0
"""How long a lost NATS connection may stay lost before the process counts as not live: nats-py
reconnects on its own, so a short outage (a server restart) must not restart every actor."""

Checks = dict[str, str]
"""Check name -> "ok" or why not."""


class Connection(Protocol):
    """What health reads of a NATS client (nats-py's Client has both)."""

    @property
    def is_connected(self) -> bool: ...

    @property
    def is_closed(self) -> bool: ...


class Readiness(Protocol):
    """What an actor's service reports (workers.runtime.bus.Service implements it)."""

    def readiness(self) -> Checks: ...


class ProcessHealth:
    """The health of one process: its connection (once it has one) and its service's checks."""

    def __init__(
        self,
        actor: str,
        *,
        disconnected_grace_s: float = DEFAULT_DISCONNECTED_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.actor = actor
        self._grace_s = disconnected_grace_s
        self._clock = clock
        self._nc: Connection | None = None
        self._service: Readiness | None = None
        self._down_since: float | None = None

    def attach(self, nc: Connection, service: Readiness | None = None) -> None:
        """The actor is connected (and, with `service`, started)."""
        self._nc = nc
        self._service = service

    def _connection(self) -> str:
        nc = self._nc
        if nc is None:
            return "not connected yet"
        if nc.is_closed:
            return "NATS connection closed"
        if nc.is_connected:
            self._down_since = None
            return OK
        now = self._clock()
        if self._down_since is None:
            self._down_since = now
        return f"disconnected from NATS for {now - self._down_since:.1f}s"

    def liveness(self) -> Checks:
        state = self._connection()
        nc = self._nc
        if nc is None or state == OK:
            return {"nats": OK}  # still starting: the start itself is bounded
        if nc.is_closed:
            return {"nats": state}
        assert self._down_since is not None
        if self._clock() - self._down_since > self._grace_s:
            return {"nats": f"{state} (more than {self._grace_s:g}s)"}
        return {"nats": OK}

    def readiness(self) -> Checks:
        checks = {"nats": self._connection()}
        if self._service is None:
            checks["service"] = "starting"
        else:
            checks.update(self._service.readiness())
        return checks


def healthy(checks: Checks) -> bool:
    return all(value == OK for value in checks.values())


def body(actor: str, checks: Checks) -> tuple[bytes, int]:
    """The JSON body and status of one probe answer."""
    ok = healthy(checks)
    text = json.dumps(
        {"status": "ok" if ok else "unavailable", "actor": actor, "checks": checks},
        sort_keys=True,
    )
    return text.encode(), 200 if ok else 503


def add_routes(
    app: web.Application, actor: str, live: Callable[[], Checks], ready: Callable[[], Checks]
) -> None:
    """Add `/livez` and `/readyz` to an aiohttp application (the gateway's front has its own)."""

    from aiohttp import web  # here, not at the top: `relay health` (the exec probe) needs none

    def handler(checks: Callable[[], Checks]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            data, status = body(actor, checks())
            return web.Response(body=data, status=status, content_type="application/json")

        return answer

    app.router.add_get("/livez", handler(live))
    app.router.add_get("/readyz", handler(ready))


class HealthServer:
    """The probe endpoints of one process on host:port (port 0 picks a free one)."""

    def __init__(self, health: ProcessHealth, *, host: str = "127.0.0.1", port: int = 0) -> None:
        from aiohttp import web

        self._host = host
        self._port = port
        app = web.Application()
        add_routes(app, health.actor, health.liveness, health.readiness)
        self._runner = web.AppRunner(app, access_log=None)

    @property
    def port(self) -> int:
        for address in self._runner.addresses:
            return int(address[1])
        raise RuntimeError("the health server is not listening")

    async def start(self) -> None:
        from aiohttp import web

        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info("health probes on http://%s:%d/livez and /readyz", self._host, self.port)

    async def close(self) -> None:
        await self._runner.cleanup()


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name) or ""
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from exc
    # The check of settings.require_seconds, not imported: settings loads NATS, and the exec
    # probe (`python -m workers.cli.health`) must start fast.
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {raw!r}")
    return value


def port_from_env(flag: int | None) -> int | None:
    """The health port: the flag, else RELAY_HEALTH_PORT, else None (no server); 0 means none."""
    raw = str(flag) if flag is not None else os.environ.get("RELAY_HEALTH_PORT") or ""
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError as exc:
        raise ValueError(f"RELAY_HEALTH_PORT (--health-port) must be a port, got {raw!r}") from exc
    if not 0 <= port <= 65535:
        raise ValueError(f"RELAY_HEALTH_PORT (--health-port) must be 0-65535, got {port}")
    return port or None


def host_from_env(flag: str | None) -> str:
    return flag or os.environ.get("RELAY_HEALTH_HOST") or "127.0.0.1"


def grace_from_env() -> float:
    return _env_float("RELAY_HEALTH_DISCONNECTED_GRACE_S", DEFAULT_DISCONNECTED_GRACE_S)
