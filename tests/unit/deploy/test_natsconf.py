"""Generated nats-server configs: the repo's nats.conf is the dev topology's, identities are sound."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import nkeys

from tests.conftest import REPO_ROOT
from workers.deploy import grants, natsconf, topology

DEV = REPO_ROOT / "deploy" / "nats" / "dev.toml"
CLUSTER = REPO_ROOT / "deploy" / "nats" / "cluster.toml"
HUB = REPO_ROOT / "deploy" / "nats" / "hub-leaf.toml"


def test_the_repos_nats_conf_is_what_nats_config_dev_writes_for_the_dev_topology() -> None:
    """nats.conf is never edited by hand: regenerate it with `relay nats-config ... --dev`."""
    rendered = natsconf.render(topology.load(DEV), natsconf.Identities(dev=True))
    assert (REPO_ROOT / "nats.conf").read_text() == rendered["relay-dev.conf"]


def test_each_node_grant_names_only_its_own_nodes_subjects() -> None:
    """No wildcard stands for a DON or node token: node-1's users name node-1 alone."""
    t = topology.load(DEV)
    for grant in grants.node_grants(t.don, "node-1", t.capabilities):
        if grant.actor == "ops":
            continue
        for subject in (*grant.publish_allow, *grant.subscribe_allow):
            if subject.startswith("relay."):
                assert subject.startswith("relay.v1.relay-don.node-1."), (grant.actor, subject)


def test_nkey_configs_hold_public_keys_and_the_seeds_are_private_files(tmp_path: Path) -> None:
    """Each user's seed is a 0600 file matching a public key of the config; no seed in a config."""
    written = natsconf.write(topology.load(CLUSTER), tmp_path, dev=False)
    text = written.configs[0].read_text()
    publics = set(re.findall(r'nkey: "(U[A-Z0-9]+)"', text))
    assert len(written.seeds) == len(publics) == 4 * 7 + 4 + 2 * 2
    for seed_file in written.seeds:
        assert stat.S_IMODE(seed_file.stat().st_mode) == 0o600
        seed = seed_file.read_bytes().strip()
        assert nkeys.from_seed(bytearray(seed)).public_key.decode() in publics
        assert seed.decode() not in text
    for path in (*written.configs, *written.env_files):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The only password is the route link's (servers authenticate each other with it).
    assert re.findall(r"password: ", text) == ["password: "]


def test_regenerating_reuses_every_seed_so_no_key_rotates(tmp_path: Path) -> None:
    """A second run over the same directory writes the same public keys."""
    first = natsconf.write(topology.load(CLUSTER), tmp_path, dev=False)
    before = {p: p.read_bytes() for p in first.seeds}
    config = first.configs[0].read_text()
    second = natsconf.write(topology.load(CLUSTER), tmp_path, dev=False)
    assert {p: p.read_bytes() for p in second.seeds} == before
    keys = re.compile(r'nkey: "(U[A-Z0-9]+)"')
    assert keys.findall(second.configs[0].read_text()) == keys.findall(config)


def test_the_env_file_of_a_party_names_its_seed_files_as_relay_reads_them(tmp_path: Path) -> None:
    """env/operator-2.env: RELAY_NATS_NKEY_SEED_<ACTOR>=<its seed file>, for node-2's users only."""
    written = natsconf.write(topology.load(CLUSTER), tmp_path, dev=False)
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "env" / "operator-2.env").read_text().splitlines()
    )
    assert set(env) == {
        "RELAY_NATS_NKEY_SEED_" + a.upper().replace("-", "_") for a in grants.NODE_ACTORS
    }
    assert all(
        Path(v).parent == (tmp_path / "seeds" / "operator-2").resolve() for v in env.values()
    )
    assert written.env_files


def test_a_leaf_carries_only_its_operators_account_with_the_hubs_domain_grants(
    tmp_path: Path,
) -> None:
    """leaf-1.conf: operator-1's users (reading the hub's domain), no gateway or other operator."""
    written = natsconf.write(topology.load(HUB), tmp_path, dev=True)
    leaf = next(p for p in written.configs if p.name == "leaf-1.conf").read_text()
    assert "operator-1: {" in leaf
    for other in ("operator-0: {", "operator-2: {", "gateway: {", "vault: {"):
        assert other not in leaf
    assert "$JS.hub.API.STREAM.INFO.KV_relay_registry" in leaf
    assert 'domain: "operator-1"' in leaf
    assert 'account: "operator-1"' in leaf


def test_the_accounts_file_holds_the_same_accounts_and_users_as_every_server(
    tmp_path: Path,
) -> None:
    """accounts.conf (for the Helm chart's include) is the servers' accounts block, same keys."""
    written = natsconf.write(topology.load(CLUSTER), tmp_path, dev=False)
    by_name = {p.name: p.read_text() for p in written.configs}
    accounts = by_name.pop(natsconf.ACCOUNTS_FILE)
    keys = re.compile(r'nkey: "(U[A-Z0-9]+)"')
    assert "listen:" not in accounts
    assert 'system_account: "SYS"' in accounts
    for text in by_name.values():
        assert keys.findall(text) == keys.findall(accounts)
