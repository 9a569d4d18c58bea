"""Every nats-server configuration of a topology (`relay nats-config TOPOLOGY --out DIR`).

Accounts: one per node operator (that node's actors and an ops user; it exports only the node's
`relay.v1.<don>.<node>.rpc` service, to the gateway's account, and imports the capability DONs'
services), one for the gateway (imports each node's rpc), one per capability DON (exports its
`cap.v1` services to the operators). Users are nkeys (public keys in the configs, each seed in
its own 0600 file under the account's name that `RELAY_NATS_NKEY_SEED_<ACTOR>` names; an existing seed file is reused, so
regenerating rotates nothing) or, with `dev`, the dev passwords of workers/runtime/credentials.py.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys

from workers.deploy import grants
from workers.deploy.topology import Server, Tls, Topology
from workers.runtime.credentials import dev_password, dev_user

SEEDS_DIR = "seeds"
ENV_DIR = "env"


@dataclass
class Identities:
    """Who each user is: dev passwords, or nkeys whose seeds live under `seeds_root`."""

    dev: bool
    seeds_root: Path | None = None
    seed_files: dict[Path, bytes] = field(default_factory=dict)
    env_files: dict[str, dict[str, str]] = field(default_factory=dict)
    link_passwords: dict[str, str] = field(default_factory=dict)

    def user(self, party: str, account: str, actor: str) -> dict[str, Any]:
        """The dev user is named by party (node-1-verifier: what credentials.py computes); the
        seed lives under its account's name (the operator's), which is who receives it."""
        name = dev_user(actor, party)
        if self.dev:
            return {"user": name, "password": dev_password(name)}
        assert self.seeds_root is not None
        path = self.seeds_root / account / f"{actor}.nk"
        # One seed per user, however many configs name it (a hub and a leaf both do).
        seed = self.seed_files.get(path) or (
            path.read_bytes().strip() if path.is_file() else _new_seed()
        )
        self.seed_files[path] = seed
        variable = "RELAY_NATS_NKEY_SEED_" + actor.upper().replace("-", "_")
        self.env_files.setdefault(account, {})[variable] = str(path.resolve())
        public = nkeys.from_seed(bytearray(seed)).public_key.decode()
        return {"nkey": public}

    def link_password(self, name: str) -> str:
        """A route or leaf link's password: the dev one, or random (written in both configs)."""
        if self.dev:
            return dev_password(name)
        return self.link_passwords.setdefault(name, secrets.token_urlsafe(24))


def _new_seed() -> bytes:
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


# --- rendering: the NATS config syntax (a JSON superset), with comments --------------------------


class Raw(str):
    """A value written unquoted (sizes such as 256MB, which nats-server reads only bare)."""


_INLINE_WIDTH = 96


def _value(value: Any, indent: str) -> str:
    inner = indent + "  "
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        flat = "[" + ", ".join(_value(v, inner) for v in value) + "]"
        if "\n" not in flat and len(flat) + len(indent) <= _INLINE_WIDTH:
            return flat
        return "[\n" + "".join(f"{inner}{_value(v, inner)}\n" for v in value) + f"{indent}]"
    if isinstance(value, dict):
        if not any(k.startswith("#") for k in value):
            flat = "{" + ", ".join(f"{k}: {_value(v, inner)}" for k, v in value.items()) + "}"
            if "\n" not in flat and len(flat) + len(indent) <= _INLINE_WIDTH:
                return flat
        return "{\n" + _block(value, inner) + f"{indent}}}"
    raise TypeError(f"cannot render {type(value).__name__}")


def _block(entries: dict[str, Any], indent: str) -> str:
    lines: list[str] = []
    for key, value in entries.items():
        if key.startswith("#"):
            lines.extend(f"{indent}# {line}".rstrip() + "\n" for line in str(value).splitlines())
        else:
            lines.append(f"{indent}{key}: {_value(value, indent)}\n")
    return "".join(lines)


def _tls(tls: Tls) -> dict[str, Any]:
    block: dict[str, Any] = {"cert_file": tls.cert, "key_file": tls.key}
    if tls.ca:
        block["ca_file"] = tls.ca
    if tls.verify:
        block["verify"] = True
    return block


def _users(
    identities: Identities, party: str, account: str, party_grants: Iterable[grants.Grant]
) -> list[Any]:
    users: list[Any] = []
    for grant in party_grants:
        users.append(
            {
                "#": f"{dev_user(grant.actor, party)}: {grant.why}",
                **identities.user(party, account, grant.actor),
                "permissions": grant.permissions(),
            }
        )
    return users


def accounts(t: Topology, identities: Identities, *, only: str | None = None) -> dict[str, Any]:
    """The `accounts` block; `only` keeps one operator's account (a leaf server's)."""
    domain = t.hub_domain()
    nodes = tuple(n.name for n in t.nodes)
    out: dict[str, Any] = {}
    if only is None:
        out[t.gateway_account] = {
            "jetstream": "enabled",
            "users": _users(
                identities, "gateway", t.gateway_account, grants.gateway_grants(t.don, nodes)
            ),
            "imports": [
                {"service": {"account": n.operator, "subject": _rpc(t, n.name)}} for n in t.nodes
            ],
        }
    for node in t.nodes:
        if only is not None and node.operator != only:
            continue
        account: dict[str, Any] = {
            "#": f"operator {node.operator}: the actors of {node.name}, nothing else",
            "jetstream": "enabled",
            "users": _users(
                identities,
                node.name,
                node.operator,
                grants.node_grants(t.don, node.name, t.capabilities, domain if only else ""),
            ),
        }
        if only is None:
            # Only this node's rpc leaves the account, and only towards the gateway.
            account["exports"] = [{"service": _rpc(t, node.name), "accounts": [t.gateway_account]}]
            account["imports"] = [
                {"service": {"account": c.account, "subject": s}}
                for c in t.capabilities
                for s in grants.capability_subjects(c)
            ]
        out[node.operator] = account
    if only is None:
        for cap in t.capabilities:
            out[cap.account] = {
                "users": _users(
                    identities, cap.account, cap.account, grants.capability_grants(cap)
                ),
                "exports": [
                    {"service": s, "accounts": list(t.operators)}
                    for s in grants.capability_subjects(cap)
                ],
            }
        # The system account: server events and monitoring ($SYS.>); no relay user belongs here.
        out["SYS"] = {}
    return out


def _rpc(t: Topology, node: str) -> str:
    from schemas import subjects

    return subjects.rpc(t.don, node)


def server_config(t: Topology, server: Server, identities: Identities) -> str:
    conf: dict[str, Any] = {
        "server_name": server.name,
        "listen": f"{server.host}:{server.port}",
    }
    if server.http_port:
        conf["http"] = f"{server.host}:{server.http_port}"
    jetstream: dict[str, Any] = {"max_memory_store": Raw("256MB"), "max_file_store": Raw("1GB")}
    if server.store_dir:
        jetstream["store_dir"] = server.store_dir
    if server.domain:
        jetstream["domain"] = server.domain
    conf["jetstream"] = jetstream
    if "client" in t.tls:
        conf["tls"] = _tls(t.tls["client"])
    members = t.hubs if server.role == "hub" else t.servers
    if server.cluster_port and len(members) > 1:
        conf["cluster"] = _cluster(t, server, members, identities)
    if server.role == "hub":
        conf["leafnodes"] = _hub_leafnodes(t, server, identities)
    if server.role == "leaf":
        conf["leafnodes"] = _leaf_remotes(t, server, identities)
        conf["accounts"] = accounts(t, identities, only=server.operator)
    else:
        conf["accounts"] = accounts(t, identities)
        conf["system_account"] = "SYS"
    return _header(t, server) + _block(conf, "")


def _cluster(
    t: Topology, server: Server, members: tuple[Server, ...], identities: Identities
) -> dict[str, Any]:
    password = identities.link_password("route")
    block: dict[str, Any] = {
        "name": t.cluster_name,
        "listen": f"{server.host}:{server.cluster_port}",
        "authorization": {"user": "route", "password": password},
        "routes": [
            f"nats-route://route:{password}@{m.host}:{m.cluster_port}"
            for m in members
            if m.name != server.name
        ],
    }
    if "route" in t.tls:
        block["tls"] = _tls(t.tls["route"])
    return block


def _hub_leafnodes(t: Topology, server: Server, identities: Identities) -> dict[str, Any]:
    users = [
        {
            "user": f"{leaf.operator}-leaf",
            "password": identities.link_password(f"{leaf.operator}-leaf"),
            "account": leaf.operator,
        }
        for leaf in t.servers
        if leaf.role == "leaf" and (not leaf.hubs or server.name in leaf.hubs)
    ]
    block: dict[str, Any] = {
        "listen": f"{server.host}:{server.leaf_port}",
        "#": "each leaf link is bound to its operator's account: it carries nothing else",
        "authorization": {"users": users},
    }
    if "leaf" in t.tls:
        block["tls"] = _tls(t.tls["leaf"])
    return block


def _leaf_remotes(t: Topology, server: Server, identities: Identities) -> dict[str, Any]:
    user = f"{server.operator}-leaf"
    password = identities.link_password(user)
    scheme = "tls" if "leaf" in t.tls else "nats-leaf"
    hubs = [h for h in t.hubs if not server.hubs or h.name in server.hubs]
    remote: dict[str, Any] = {
        "urls": [f"{scheme}://{user}:{password}@{h.host}:{h.leaf_port}" for h in hubs],
        "account": server.operator,
    }
    if "leaf" in t.tls:
        remote["tls"] = _tls(t.tls["leaf"])
    return {"remotes": [remote]}


def _header(t: Topology, server: Server) -> str:
    nodes = ", ".join(f"{n.name} ({n.operator})" for n in t.nodes)
    return (
        f"# nats-server {server.name} of relay DON {t.don} ({t.layout} layout, role {server.role}),\n"
        "# written by `relay nats-config` from a topology file: edit the topology, not this file.\n"
        f"# Nodes (operator): {nodes}. Who may do what: docs/deployment.md.\n"
        "# Method, capability and verb tokens are schemas.subjects.encode_token of the names\n"
        "# (confidential.secrets.get -> confidential_2esecrets_2eget, vault@1.0.0 ->\n"
        "# vault_401_2e0_2e0). Every queue-group subscription is granted only with its group.\n\n"
    )


@dataclass(frozen=True)
class Written:
    configs: tuple[Path, ...]
    seeds: tuple[Path, ...]
    env_files: tuple[Path, ...]


ACCOUNTS_FILE = "accounts.conf"


def render(t: Topology, identities: Identities) -> dict[str, str]:
    """Every server's configuration, by file name (`<server>.conf`)."""
    return {f"{s.name}.conf": server_config(t, s, identities) for s in t.servers}


def accounts_config(t: Topology, identities: Identities) -> str:
    """The accounts block and system account alone (what every non-leaf server holds), for a
    deployment whose listeners another tool writes (the NATS Helm chart: docs/containers.md)."""
    header = (
        f"# The accounts of relay DON {t.don}, written by `relay nats-config`: include it from a\n"
        "# server config whose listeners, cluster and JetStream are written elsewhere.\n\n"
    )
    return header + _block({"accounts": accounts(t, identities), "system_account": "SYS"}, "")


def write(t: Topology, out: Path, *, dev: bool) -> Written:
    """Write every config under `out` (0600: link passwords are in them), the seeds under
    `out/seeds/<account>/<actor>.nk` (0600; a node's account is its operator's name) and one
    env file per account naming its seed files (`out/env/<account>.env`)."""
    out.mkdir(parents=True, exist_ok=True)
    identities = Identities(dev=dev, seeds_root=None if dev else out / SEEDS_DIR)
    configs = render(t, identities)
    configs[ACCOUNTS_FILE] = accounts_config(t, identities)
    written = []
    for name, text in configs.items():
        written.append(_write_private(out / name, text.encode()))
    seeds = [_write_private(path, seed + b"\n") for path, seed in identities.seed_files.items()]
    envs = []
    for party, variables in identities.env_files.items():
        lines = "".join(f"{k}={v}\n" for k, v in sorted(variables.items()))
        envs.append(_write_private(out / ENV_DIR / f"{party}.env", lines.encode()))
    return Written(tuple(written), tuple(seeds), tuple(envs))


def _write_private(path: Path, data: bytes) -> Path:
    """Create or replace a file readable by its owner only (no moment with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
