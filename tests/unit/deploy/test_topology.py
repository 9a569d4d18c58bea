"""Topology files: the examples load, and every unusable topology is refused with its reasons."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from workers.deploy import topology

EXAMPLES = sorted((REPO_ROOT / "deploy" / "nats").glob("*.toml"))


def _dev() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "deploy" / "nats" / "dev.toml").read_text())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_topology_loads(path: Path) -> None:
    """deploy/nats/*.toml parse and pass every coherence check."""
    t = topology.load(path)
    assert [n.name for n in t.nodes] == ["node-0", "node-1", "node-2", "node-3"]
    assert len(set(t.operators)) == 4


def test_the_dev_topology_has_one_server_four_operators_the_gateway_vault_and_echo() -> None:
    """The dev DON the repo's nats.conf is generated from."""
    t = topology.parse(_dev())
    assert (t.layout, t.don, t.gateway_account) == ("single", "relay-don", "gateway")
    assert [c.account for c in t.capabilities] == ["vault", "echo"]
    assert t.capabilities[0].methods == ("vault.secrets.get",)
    assert t.capabilities[1].methods == (topology.ALL_METHODS,)


def _problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(topology.TopologyError) as caught:
        topology.parse(raw)
    return caught.value.problems


def test_one_operator_running_two_nodes_is_refused() -> None:
    """Two nodes in one account would give one operator two votes of the F+1 quorum."""
    raw = _dev()
    raw["nodes"][1]["operator"] = raw["nodes"][0]["operator"]
    assert "account 'operator-0' appears more than once" in _problems(raw)


def test_a_cluster_needs_three_servers_with_cluster_ports() -> None:
    """A JetStream quorum needs 3; each server needs a route port."""
    raw = _dev()
    raw["layout"] = "cluster"
    problems = _problems(raw)
    assert "layout 'cluster' needs at least 3 servers (a JetStream quorum)" in problems
    assert "server relay-dev needs a cluster_port" in problems


def test_a_leaf_without_its_own_domain_or_operator_is_refused() -> None:
    """Each leaf carries one operator's account in a JetStream domain of its own."""
    raw = tomllib.loads((REPO_ROOT / "deploy" / "nats" / "hub-leaf.toml").read_text())
    raw["servers"][1]["domain"] = "hub"
    raw["servers"][2]["operator"] = "nobody"
    problems = _problems(raw)
    assert "each leaf needs a JetStream domain of its own, not the hub's" in problems
    assert "leaf leaf-1: operator 'nobody' runs no node" in problems


def test_unknown_keys_bad_names_and_bad_ports_are_all_listed_at_once() -> None:
    """A typo is named, not ignored; every problem comes in one error."""
    raw = _dev()
    raw["nodes"][0]["operatr"] = "x"
    raw["nodes"][2]["name"] = "node 2"
    raw["servers"][0]["port"] = 70000
    raw["gateway"]["account"] = "SYS"
    problems = _problems(raw)
    assert "nodes[0].unknown key 'operatr'" in problems
    assert any(p.startswith("nodes[2].name 'node 2'") for p in problems)
    assert "servers[0].port must be a port number 0-65535" in problems
    assert any(p.startswith("gateway.account 'SYS'") for p in problems)


def test_a_file_that_is_not_toml_is_one_topology_error(tmp_path: Path) -> None:
    """No traceback: the reason names the file."""
    bad = tmp_path / "bad.toml"
    bad.write_text("don = [unclosed")
    with pytest.raises(topology.TopologyError, match="is not TOML"):
        topology.load(bad)
