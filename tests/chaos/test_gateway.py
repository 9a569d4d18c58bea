"""The gateway under faults: `relay gateway` (HTTP front) in front of the chaos node, valid load
over HTTP. SIGTERM drains; kill -9 loses at most the requests it held (their connections break
at once, the client knows); a nats-server crash loses nothing: the gateway re-sends its in-flight
requests after the reconnect (node-side dedupe and memo make the re-send safe).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field

import aiohttp
import pytest

from schemas import rpc
from tests.chaos.cluster import Cluster, Portal
from tests.chaos.gatewayproc import HTTP_TIMEOUT_S, GatewayRunner
from tests.chaos.load import Figures, report
from tests.chaos.payloads import echo_is_correct, echo_request

pytestmark = pytest.mark.usefixtures("node")  # each fault test starts from a whole node

RATE, DURATION_S, FAULT_AT_S = 20.0, 4.0, 1.5


@dataclass
class HttpFigures(Figures):
    """Figures over HTTP; `refused`: a new connection refused while no gateway listened (the
    client knows at once and retries elsewhere), counted apart from `lost`."""

    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # the gateway's error texts, counted

    def summary(self) -> dict[str, object]:
        return {**super().summary(), "refused": self.refused, "errors": self.errors}


async def _post(
    session: aiohttp.ClientSession, url: str, raw: bytes, rid: str, figures: HttpFigures
) -> None:
    started = time.monotonic()
    figures.in_flight += 1
    try:
        async with session.post(
            url, data=raw, timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        ) as resp:
            status, data = resp.status, await resp.read()
    except aiohttp.ClientConnectorError:
        figures.refused += 1
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        figures.lost += 1
        figures.wrong_samples.append(f"{rid}: {exc!r}"[:200])
        return
    finally:
        figures.in_flight -= 1
    figures.latencies_s.append(time.monotonic() - started)
    body = json.loads(data)
    error = body.get("error")
    if status == 200 and error is None and echo_is_correct(rid, body):
        figures.correct += 1
    elif error is not None and error.get("code") in (rpc.ErrInternal, rpc.ErrServerOverloaded):
        # PROTOCOL 2.6: fatal (-32603, 500) or expired (-32000, 504), the gateway's own answers.
        figures.spec_error += 1
        text = f"{status} {error['code']} {str(error.get('message'))[:60]}"
        figures.errors[text] = figures.errors.get(text, 0) + 1
    else:
        figures.wrong += 1
        figures.wrong_samples.append(f"{status} {data[:200]!r}")


async def http_load(
    url: str, cluster: Cluster, figures: HttpFigures, prefix: str, duration_s: float = DURATION_S
) -> HttpFigures:
    """Open-loop HTTP POSTs, each on its own connection (a dead gateway breaks only its own)."""
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        started = time.monotonic()
        for i in range(int(RATE * duration_s)):
            delay = started + i / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            rid = f"{prefix}-{i}"
            figures.sent += 1
            tasks.append(
                asyncio.create_task(
                    _post(session, url, echo_request(cluster.chain, rid), rid, figures)
                )
            )
        await asyncio.gather(*tasks)
    return figures


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_a_gateway_stopped_under_load_loses_at_most_what_it_held_at_a_kill_9(
    portal: Portal, cluster: Cluster, gateway: GatewayRunner, sig: signal.Signals
) -> None:
    """SIGTERM: every accepted request is answered (drained), new connections are refused until
    the restart. kill -9: the requests it held see their connection break; nothing else lost."""
    assert gateway.current is not None
    figures = HttpFigures()
    running = portal.start(http_load(gateway.current.url, cluster, figures, f"gw-{sig.name}"))
    time.sleep(FAULT_AT_S)
    in_flight, sent = figures.in_flight, figures.sent
    proc = gateway.current.proc
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=30)
    in_flight += figures.sent - sent
    gateway.start(portal)
    running.result(DURATION_S + HTTP_TIMEOUT_S + 60)
    report(f"gateway-{sig.name.lower()}", figures, in_flight_at_signal=in_flight)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert figures.wrong == 0, figures.wrong_samples
    allowed = 0 if sig == signal.SIGTERM else in_flight
    assert figures.lost <= allowed, (figures.summary(), figures.wrong_samples)
    assert figures.correct + figures.spec_error + figures.lost + figures.refused == figures.sent
    after = portal.run(http_load(gateway.current.url, cluster, HttpFigures(), "gw-after", 1.0), 60)
    assert after.correct == after.sent, after.summary()


def test_a_nats_server_crash_behind_the_gateway_loses_no_request(
    portal: Portal, cluster: Cluster, gateway: GatewayRunner
) -> None:
    """kill -9 of nats-server and a restart 1 s later, under HTTP load: the gateway re-sends what
    it was waiting for once reconnected, so every request gets an answer, and no wrong one."""
    assert gateway.current is not None
    figures = HttpFigures()
    running = portal.start(http_load(gateway.current.url, cluster, figures, "gw-crash", 5.0))
    time.sleep(FAULT_AT_S)
    in_flight = figures.in_flight
    cluster.kill_server()
    time.sleep(1.0)
    cluster.restart_server()
    running.result(5.0 + HTTP_TIMEOUT_S + 60)
    report("gateway-nats-server-kill-9", figures, in_flight_at_crash=in_flight)
    assert figures.wrong == 0, figures.wrong_samples
    assert (figures.lost, figures.refused) == (0, 0), (figures.summary(), figures.wrong_samples)
    assert figures.correct + figures.spec_error == figures.sent
