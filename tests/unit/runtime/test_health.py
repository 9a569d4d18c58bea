"""ProcessHealth's rules on plain values: a connection's state and a clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.runtime.health import ProcessHealth, body, healthy


@dataclass
class Conn:
    is_connected: bool = True
    is_closed: bool = False


@dataclass
class Svc:
    checks: dict[str, str] = field(default_factory=lambda: {"service": "ok"})

    def readiness(self) -> dict[str, str]:
        return self.checks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_starting_process_is_live_and_not_ready() -> None:
    """Before the actor is attached, liveness passes and readiness says it is starting."""
    health = ProcessHealth("verifier")
    assert healthy(health.liveness())
    assert health.readiness() == {"nats": "not connected yet", "service": "starting"}


def test_a_disconnection_fails_readiness_at_once_and_liveness_only_after_the_grace() -> None:
    """Lost NATS: not ready at once; live until the grace has passed; both back on reconnect."""
    clock, conn = Clock(), Conn()
    health = ProcessHealth("ingress", disconnected_grace_s=5.0, clock=clock)
    health.attach(conn, Svc())
    assert healthy(health.readiness())
    conn.is_connected = False
    assert not healthy(health.readiness())
    clock.now += 5.0
    assert healthy(health.liveness())
    clock.now += 0.1
    assert health.liveness() == {"nats": "disconnected from NATS for 5.1s (more than 5s)"}
    conn.is_connected = True
    assert healthy(health.liveness())
    assert healthy(health.readiness())
    conn.is_connected = False  # a new outage starts a new grace
    clock.now += 1.0
    assert healthy(health.liveness())


def test_a_closed_connection_is_not_live() -> None:
    """A closed connection never comes back on its own: liveness fails at once."""
    health = ProcessHealth("registry")
    health.attach(Conn(is_connected=False, is_closed=True), Svc())
    assert health.liveness() == {"nats": "NATS connection closed"}


def test_the_service_checks_decide_readiness_and_the_status_code() -> None:
    """A failing service check (the registry not loaded) makes the answer 503, named in the body."""
    health = ProcessHealth("ingress")
    health.attach(Conn(), Svc({"service": "ok", "registry": "registry view not loaded: x"}))
    data, status = body("ingress", health.readiness())
    assert status == 503
    assert b'"registry": "registry view not loaded: x"' in data
    assert body("ingress", {"nats": "ok"})[1] == 200
