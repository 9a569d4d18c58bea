"""Settings of one relay node's actors, from the command line and `RELAY_*` environment variables.

Every number is checked when the settings are built (`NodeSettings.__post_init__`, which
`from_env` and the command line go through too): a bad value is a ValueError naming the variable
and the value, so `relay up` and `relay worker` refuse to start with one clear line rather than
start and then fail, hang or spin on every request.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from workers.runtime.jetstream import check_domain, check_replicas, env_domain, env_replicas
from workers.runtime.servers import ServerListError, parse_servers

DEFAULT_DON = "relay-don"
DEFAULT_NODE = "node-0"
DEFAULT_MAX_ATTESTATION_AGE_S = 300.0
# The one word that turns the attestation freshness check off (as Go N1); nothing else does.
DISABLE_WORD = "none"
MAX_PORT = 65535
PROTOCOLS = ("n1", "current")

# How a setting is named to an operator: its environment variable, and its flag if it has one.
_NAMES = {
    "request_timeout_s": "RELAY_REQUEST_TIMEOUT_S",
    "stage_attempt_timeout_s": "RELAY_STAGE_ATTEMPT_TIMEOUT_S",
    "max_attestation_age_s": "RELAY_MAX_ATTESTATION_AGE_S",
    "metrics_port": "RELAY_METRICS_PORT (--metrics-port)",
    "concurrency": "concurrency",
}


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


def _env_max_age(name: str, default: float) -> float | None:
    """Seconds, or None for exactly the documented `none`; empty is the default, never "off"."""
    raw = os.environ.get(name)
    if raw is not None and raw.strip().lower() == DISABLE_WORD:
        return None
    try:
        return _env_float(name, default)
    except ValueError as exc:
        raise ValueError(
            f"{name} must be a number of seconds or {DISABLE_WORD!r}, got {raw!r}"
        ) from exc


def _env_port(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a port number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean, got {raw!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def require_seconds(label: str, value: object, hint: str = "") -> None:
    """A duration that must pass: finite and > 0 (0 or less would spin or fail every request,
    nan never wakes a sleep, inf is no bound at all); ValueError naming `label` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(f"{label} must be a finite number of seconds > 0{hint}, got {value!r}")


def _check_seconds(setting: str, value: object, hint: str = "") -> None:
    require_seconds(_NAMES[setting], value, hint)


@dataclass(frozen=True, kw_only=True)
class NodeSettings:
    """What a relay node's actors need to know about themselves and their budgets."""

    don: str = DEFAULT_DON
    node: str = DEFAULT_NODE
    nats_url: str = "nats://127.0.0.1:4222"
    # The kill switch ([CRE.ConfidentialRelay] Enabled): a disabled node takes no requests.
    enabled: bool = True
    # The whole budget of one request inside the node; every stage call gets what remains.
    request_timeout_s: float = 10.0
    # One attempt at a pure stage (verify, registry); a lost attempt is retried within the budget.
    stage_attempt_timeout_s: float = 1.0
    # Requests one actor serves at once (its endpoints' slots). Capability and vault calls, slow
    # and not idempotent, get one attempt with the whole remaining budget (not a setting).
    concurrency: int = 64
    # Freshness bound on the attestation timestamp (both directions); None disables it (Go N1).
    max_attestation_age_s: float | None = DEFAULT_MAX_ATTESTATION_AGE_S
    # A non-AWS root for development and demos only; loudly logged.
    dev_root_pem: Path | None = None
    # Debug-mode enclaves (PCR0-2 all zero, whatever they run) are refused unless this is set.
    allow_debug_enclaves: bool = False
    # Registry lookups in-process from the KV bucket ("local") or via the registry actor ("actor").
    registry_lookups: str = "local"
    # Capability calls deduplicated in this process ("local") or across the node's dispatchers
    # in the relay_dedupe KV bucket ("shared": for more than one dispatch-capability replica).
    dedupe: str = "local"
    # Which protocol this node speaks (chosen per DON): "n1" (PROTOCOL 1-9, the seed's) or
    # "current" (PROTOCOL 10: signed responses, EnclaveConfig, Workflow-DON authorization,
    # DomainHash v2, the response memo).
    protocol: str = "n1"
    # The node's Ed25519 key file (hex seed, 0600); only the ingress reads it, under "current".
    node_key: Path | None = None
    metrics_port: int | None = None
    # The JetStream domain of the relay's KV buckets (None: the server's own) and the replicas
    # of the buckets the relay creates (docs/deployment.md; workers/runtime/jetstream.py).
    js_domain: str | None = None
    kv_replicas: int = 1
    gateway_id: str = "gateway"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"RELAY_PROTOCOL must be 'n1' or 'current', got {self.protocol!r}")
        try:
            parse_servers(self.nats_url)
        except ServerListError as exc:
            raise ValueError(f"RELAY_NATS_URL (--nats): {exc}") from None
        check_domain(self.js_domain)
        check_replicas(self.kv_replicas)
        if self.dedupe not in {"local", "shared"}:
            raise ValueError(f"dedupe must be 'local' or 'shared', got {self.dedupe!r}")
        if self.registry_lookups not in {"local", "actor"}:
            raise ValueError(
                f"registry lookups must be 'local' or 'actor', got {self.registry_lookups!r}"
            )
        _check_seconds("request_timeout_s", self.request_timeout_s)
        _check_seconds("stage_attempt_timeout_s", self.stage_attempt_timeout_s)
        # None (the word `none`) is the only way to disable the check: infinity would be a
        # disguised "off" and 0 would reject every document, so both are refused like -1.
        if self.max_attestation_age_s is not None:
            _check_seconds(
                "max_attestation_age_s",
                self.max_attestation_age_s,
                hint=f" ({DISABLE_WORD!r} disables the check)",
            )
        if not (_is_int(self.concurrency) and self.concurrency >= 1):
            raise ValueError(
                f"{_NAMES['concurrency']} must be an integer >= 1, got {self.concurrency!r}"
            )
        port = self.metrics_port
        # 0 is allowed: it is the documented "no metrics server" (`relay up` defaults to 9464).
        if port is not None and not (_is_int(port) and 0 <= port <= MAX_PORT):
            raise ValueError(
                f"{_NAMES['metrics_port']} must be a port number 0-{MAX_PORT}"
                f" (0 turns metrics off), got {port!r}"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> NodeSettings:
        values: dict[str, object] = {
            # An empty value means the default, as for the numbers (never an empty token).
            "don": os.environ.get("RELAY_DON") or DEFAULT_DON,
            "node": os.environ.get("RELAY_NODE") or DEFAULT_NODE,
            "nats_url": os.environ.get("RELAY_NATS_URL") or "nats://127.0.0.1:4222",
            "enabled": _env_bool("RELAY_ENABLED", True),
            "allow_debug_enclaves": _env_bool("RELAY_ALLOW_DEBUG_ENCLAVES", False),
            "request_timeout_s": _env_float("RELAY_REQUEST_TIMEOUT_S", 10.0),
            "stage_attempt_timeout_s": _env_float("RELAY_STAGE_ATTEMPT_TIMEOUT_S", 1.0),
            "max_attestation_age_s": _env_max_age(
                "RELAY_MAX_ATTESTATION_AGE_S", DEFAULT_MAX_ATTESTATION_AGE_S
            ),
            "registry_lookups": os.environ.get("RELAY_REGISTRY_LOOKUPS", "local"),
            "dedupe": os.environ.get("RELAY_DEDUPE", "local"),
            "protocol": os.environ.get("RELAY_PROTOCOL") or "n1",
            "js_domain": env_domain(),
            "kv_replicas": env_replicas(),
        }
        metrics_port = _env_port("RELAY_METRICS_PORT")
        if metrics_port is not None:
            values["metrics_port"] = metrics_port
        node_key = os.environ.get("RELAY_NODE_KEY")
        if node_key:
            values["node_key"] = Path(node_key)
        dev_root = os.environ.get("RELAY_DEV_ROOT_PEM")
        if dev_root:
            values["dev_root_pem"] = Path(dev_root)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
