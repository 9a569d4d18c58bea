"""The HTTP front: enclaves POST one JSON-RPC request and get the quorum answer (PROTOCOL 2.6).

Statuses follow the gateway error-code table (200, 400, 409, 429, 500, 504). Bodies larger than
the limit get 413 with a JSON-RPC parse error, before any of it reaches the handler. `GET
/healthz` answers 200 while the gateway can serve and 503 otherwise, for load balancers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from workers.gateway.errors import ErrorCode, GatewayReply
from workers.gateway.intake import rejection

log = logging.getLogger("relay.gateway.http")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024

Serve = Callable[[bytes], Awaitable[GatewayReply]]


class HttpFront:
    def __init__(
        self,
        serve: Serve,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")
        self._serve = serve
        self._host = host
        self._port = port
        self._max_body = max_body_bytes
        self._ready = ready
        self._app = web.Application(client_max_size=max_body_bytes)
        self._app.router.add_post(path, self._post)
        self._app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(self._app, access_log=None)
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        for address in self._runner.addresses:
            return int(address[1])
        raise RuntimeError("the HTTP front is not listening")

    async def start(self) -> None:
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        log.info("gateway HTTP front listening on %s:%d", self._host, self.port)

    async def stop_listening(self) -> None:
        """Close the listening socket; requests already accepted keep running."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.stop_listening()
        await self._runner.cleanup()

    async def _post(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            reply = rejection(
                "",
                ErrorCode.UserMessageParseError,
                f"request body is larger than {self._max_body} bytes",
            )
            return _respond(reply.body, 413)
        try:
            reply = await self._serve(body)
        except Exception:
            # Nothing below should raise; if it does, the enclave gets a fixed text, the log the rest.
            log.exception("serving a gateway request failed")
            reply = rejection("", ErrorCode.FatalError, "internal error")
        return _respond(reply.body, reply.status)

    async def _healthz(self, request: web.Request) -> web.Response:
        ok = self._ready()
        return web.Response(
            body=json.dumps({"status": "ok" if ok else "unavailable"}).encode(),
            status=200 if ok else 503,
            content_type="application/json",
        )


def _respond(body: bytes, status: int) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")
