"""The systemd units in deploy/ agree with the code: real actors, real variables, drain time."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from workers.node.process import ALL_ACTORS, NODE_ACTORS
from workers.runtime.bus import Service

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
SOURCES = "\n".join(p.read_text() for p in (ROOT / "workers").rglob("*.py"))


def unit(name: str) -> dict[str, list[str]]:
    """key -> every value it has in the unit (systemd allows repeated keys)."""
    found: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


@pytest.mark.parametrize("name", ["relay-worker@.service", "relay-verifier@.service"])
def test_workers_run_a_real_actor_and_outlast_its_drain_before_sigkill(name: str) -> None:
    """ExecStart is `relay worker <actor>`; SIGTERM, with more time than Service.stop may take."""
    values = unit(name)
    (exec_start,) = values["ExecStart"]
    match = re.fullmatch(r"/opt/relay/\.venv/bin/relay worker (\S+)", exec_start)
    assert match, exec_start
    assert match.group(1) in {*ALL_ACTORS, "%i"}
    assert values["KillSignal"] == ["SIGTERM"]
    drain = inspect.signature(Service.stop).parameters["drain_timeout_s"].default
    # The endpoints' drain, the requests in flight, the connection's drain: each bounded by it.
    assert int(values["TimeoutStopSec"][0]) > 3 * drain
    assert values["NoNewPrivileges"] == ["yes"]
    assert values["CapabilityBoundingSet"] == [""]


def test_the_target_starts_every_actor_of_a_node() -> None:
    """relay.target wants one relay-worker@ instance per node actor, and no unknown actor."""
    (wants,) = unit("relay.target")["Wants"]
    instances = re.findall(r"relay-worker@([\w-]+)\.service", wants)
    assert sorted(instances) == sorted(NODE_ACTORS)


def test_every_variable_the_examples_set_is_one_the_code_reads() -> None:
    """A typo in relay.env.example would be silently ignored in production: none allowed."""
    text = (UNITS / "relay.env.example").read_text()
    names = set(re.findall(r"\b(RELAY_[A-Z_]+)=", text))
    assert names
    for name in names:
        stem = re.sub(r"_(INGRESS|GATEWAY|VERIFIER)$", "_", name)  # per-actor variables
        assert stem in SOURCES, name


def test_the_gateway_unit_gives_room_for_the_default_connection_cap() -> None:
    """LimitNOFILE is set, and the default HTTP connection cap fits under it unlowered."""
    from workers.gateway.http import DEFAULT_MAX_CONNECTIONS, connection_cap

    (limit,) = unit("relay-gateway.service")["LimitNOFILE"]
    assert connection_cap(None, int(limit)) == DEFAULT_MAX_CONNECTIONS
