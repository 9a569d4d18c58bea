"""A relay deployment's NATS topology, read from a TOML file (`relay nats-config`).

The file names the parties (the relay DON's nodes and their operators, the gateway, the
capability DONs) and the servers (one, a cluster with routes, or a hub with leaf servers);
`workers/deploy/natsconf.py` turns it into every server's configuration. Everything is checked
here, so a bad file is one `TopologyError` listing what is wrong, never a half-written config.
Examples: `deploy/nats/*.toml`; the format: docs/deployment.md.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LAYOUTS = ("single", "cluster", "hub")
ROLES = ("member", "hub", "leaf")
LISTENERS = ("client", "route", "leaf")
ALL_METHODS = "*"
# Names become account names, user names and file names: keep them to one safe token.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_RESERVED = {"SYS", "$G"}


class TopologyError(ValueError):
    """The topology file cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    operator: str


@dataclass(frozen=True, kw_only=True)
class Capability:
    """A capability DON: its account and the `cap.v1` methods it serves ('*': every one)."""

    account: str
    id: str
    methods: tuple[str, ...] = (ALL_METHODS,)


@dataclass(frozen=True, kw_only=True)
class Tls:
    cert: str
    key: str
    ca: str | None = None
    # Ask for (and verify) the peer's certificate: mutual TLS.
    verify: bool = False


@dataclass(frozen=True, kw_only=True)
class Server:
    name: str
    role: str = "member"
    host: str = "127.0.0.1"
    port: int = 4222
    http_port: int = 0
    cluster_port: int = 0
    leaf_port: int = 0
    store_dir: str = ""
    domain: str = ""
    # A leaf server: the operator whose account it carries, and the hubs it connects to.
    operator: str = ""
    hubs: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Topology:
    don: str
    layout: str
    nodes: tuple[Node, ...]
    capabilities: tuple[Capability, ...]
    servers: tuple[Server, ...]
    gateway_account: str = "gateway"
    cluster_name: str = "relay"
    tls: dict[str, Tls] = field(default_factory=dict)

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    @property
    def hubs(self) -> tuple[Server, ...]:
        return tuple(s for s in self.servers if s.role == "hub")

    @property
    def operators(self) -> tuple[str, ...]:
        return tuple(n.operator for n in self.nodes)

    def hub_domain(self) -> str:
        """The JetStream domain of the hub (where the registry buckets live), or ''."""
        return self.hubs[0].domain if self.layout == "hub" and self.hubs else ""


def load(path: Path) -> Topology:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise TopologyError([f"cannot read {path}: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError([f"{path} is not TOML: {exc}"]) from exc
    return parse(raw)


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def table(self, raw: dict[str, Any], key: str, where: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            self.problems.append(f"{where}{key} must be a table")
            return {}
        return value

    def tables(self, raw: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problems.append(f"{key} must be an array of tables ([[{key}]])")
            return []
        return value

    def text(self, raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or (default is None and not value):
            self.problems.append(f"{where}{key} must be a non-empty string")
            return ""
        return value

    def name(self, raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = self.text(raw, key, where, default)
        if value and (not _NAME.fullmatch(value) or value in _RESERVED):
            self.problems.append(
                f"{where}{key} {value!r} must be letters, digits, '-' or '_' (at most 64)"
            )
        return value

    def port(self, raw: dict[str, Any], key: str, where: str, default: int) -> int:
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            self.problems.append(f"{where}{key} must be a port number 0-65535")
            return 0
        return value

    def unknown(self, raw: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(raw) - allowed):
            self.problems.append(f"{where}unknown key {key!r}")


def parse(raw: dict[str, Any]) -> Topology:
    """A checked Topology from the TOML document's tables; TopologyError lists what is wrong."""
    r = _Reader()
    r.unknown(
        raw,
        {"don", "layout", "cluster_name", "gateway", "nodes", "capabilities", "servers", "tls"},
        "",
    )
    don = r.name(raw, "don", "")
    layout = r.text(raw, "layout", "", "single")
    if layout not in LAYOUTS:
        r.problems.append(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    gateway = r.table(raw, "gateway", "")
    r.unknown(gateway, {"account"}, "gateway.")
    gateway_account = r.name(gateway, "account", "gateway.", "gateway")
    nodes = tuple(
        Node(name=r.name(n, "name", f"nodes[{i}]."), operator=r.name(n, "operator", f"nodes[{i}]."))
        for i, n in enumerate(r.tables(raw, "nodes"))
    )
    for i, n in enumerate(r.tables(raw, "nodes")):
        r.unknown(n, {"name", "operator"}, f"nodes[{i}].")
    capabilities = []
    for i, c in enumerate(r.tables(raw, "capabilities")):
        where = f"capabilities[{i}]."
        r.unknown(c, {"account", "id", "methods"}, where)
        methods = c.get("methods", [ALL_METHODS])
        if (
            not isinstance(methods, list)
            or not methods
            or not all(isinstance(m, str) for m in methods)
        ):
            r.problems.append(f"{where}methods must be a non-empty list of method names")
            methods = [ALL_METHODS]
        capabilities.append(
            Capability(
                account=r.name(c, "account", where),
                id=r.text(c, "id", where),
                methods=tuple(methods),
            )
        )
    servers = tuple(_server(r, s, i) for i, s in enumerate(r.tables(raw, "servers")))
    tls = {}
    tls_raw = r.table(raw, "tls", "")
    r.unknown(tls_raw, set(LISTENERS), "tls.")
    for listener in LISTENERS:
        if listener in tls_raw:
            t = r.table(tls_raw, listener, "tls.")
            where = f"tls.{listener}."
            r.unknown(t, {"cert", "key", "ca", "verify"}, where)
            ca = t.get("ca")
            tls[listener] = Tls(
                cert=r.text(t, "cert", where),
                key=r.text(t, "key", where),
                ca=ca if isinstance(ca, str) and ca else None,
                verify=bool(t.get("verify", False)),
            )
    topology = Topology(
        don=don,
        layout=layout,
        nodes=nodes,
        capabilities=tuple(capabilities),
        servers=servers,
        gateway_account=gateway_account,
        cluster_name=r.name(raw, "cluster_name", "", "relay"),
        tls=tls,
    )
    r.problems.extend(_coherence(topology))
    if r.problems:
        raise TopologyError(r.problems)
    return topology


def _server(r: _Reader, s: dict[str, Any], i: int) -> Server:
    where = f"servers[{i}]."
    r.unknown(
        s,
        {
            "name", "role", "host", "port", "http_port", "cluster_port", "leaf_port",
            "store_dir", "domain", "operator", "hubs",
        },
        where,
    )  # fmt: skip
    role = r.text(s, "role", where, "member")
    if role not in ROLES:
        r.problems.append(f"{where}role must be one of {', '.join(ROLES)}, got {role!r}")
    hubs = s.get("hubs", [])
    if not isinstance(hubs, list) or not all(isinstance(h, str) for h in hubs):
        r.problems.append(f"{where}hubs must be a list of server names")
        hubs = []
    domain = s.get("domain", "")
    if not isinstance(domain, str) or (domain and not _NAME.fullmatch(domain)):
        r.problems.append(f"{where}domain must be one token of letters, digits, '-' or '_'")
        domain = ""
    return Server(
        name=r.name(s, "name", where),
        role=role,
        host=r.text(s, "host", where, "127.0.0.1"),
        port=r.port(s, "port", where, 4222),
        http_port=r.port(s, "http_port", where, 0),
        cluster_port=r.port(s, "cluster_port", where, 0),
        leaf_port=r.port(s, "leaf_port", where, 0),
        store_dir=r.text(s, "store_dir", where, ""),
        domain=domain,
        operator=r.text(s, "operator", where, ""),
        hubs=tuple(hubs),
    )


def _coherence(t: Topology) -> list[str]:
    """What makes a topology unusable although each field is well formed."""
    problems = []
    if not t.nodes:
        problems.append("no nodes: a relay DON needs at least one")
    names = [n.name for n in t.nodes]
    operators = [n.operator for n in t.nodes]
    accounts = [*operators, t.gateway_account, *(c.account for c in t.capabilities)]
    for label, values in (("node name", names), ("account", accounts)):
        for value in sorted({v for v in values if values.count(v) > 1}):
            # One operator with two nodes of one DON would hold two of its votes: F+1 breaks.
            problems.append(f"{label} {value!r} appears more than once")
    if len({c.id for c in t.capabilities}) != len(t.capabilities):
        problems.append("a capability id appears more than once")
    servers = [s.name for s in t.servers]
    if not servers:
        problems.append("no servers")
    if len(set(servers)) != len(servers):
        problems.append("a server name appears more than once")
    if t.layout == "single" and len(t.servers) > 1:
        problems.append("layout 'single' takes exactly one server")
    if t.layout == "cluster":
        if len(t.servers) < 3:
            problems.append("layout 'cluster' needs at least 3 servers (a JetStream quorum)")
        problems.extend(
            f"server {s.name} needs a cluster_port" for s in t.servers if not s.cluster_port
        )
    if t.layout != "hub":
        problems.extend(
            f"server {s.name}: role {s.role!r} needs layout 'hub'"
            for s in t.servers
            if s.role != "member"
        )
        return problems
    hubs = [s for s in t.servers if s.role == "hub"]
    if not hubs:
        problems.append("layout 'hub' needs a server with role 'hub'")
    if len(hubs) > 1:
        problems.extend(f"hub {s.name} needs a cluster_port" for s in hubs if not s.cluster_port)
    if len({s.domain for s in hubs}) > 1:
        problems.append("every hub server has the same JetStream domain")
    for s in t.servers:
        if s.role == "member":
            problems.append(f"server {s.name}: layout 'hub' takes roles 'hub' and 'leaf'")
        if s.role == "hub" and not s.leaf_port:
            problems.append(f"hub {s.name} needs a leaf_port")
        if s.role in {"hub", "leaf"} and not s.domain:
            # Without distinct domains the leaf's JetStream and the hub's would be one.
            problems.append(f"server {s.name} needs a JetStream domain")
        if s.role == "leaf":
            if s.operator not in operators:
                problems.append(f"leaf {s.name}: operator {s.operator!r} runs no node")
            for hub in s.hubs:
                if hub not in {h.name for h in hubs}:
                    problems.append(f"leaf {s.name}: {hub!r} is not a hub")
    domains = [s.domain for s in t.servers if s.role == "leaf"]
    if (hubs and hubs[0].domain in domains) or len(set(domains)) != len(domains):
        problems.append("each leaf needs a JetStream domain of its own, not the hub's")
    return problems
