"""Settings of one relay node's actors, from the command line and `RELAY_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DON = "relay-don"
DEFAULT_NODE = "node-0"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


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
    # Capability and vault calls are slow and not idempotent: one attempt, the whole remaining budget.
    concurrency: int = 64
    # Freshness bound on the attestation timestamp (both directions); None disables it (Go N1).
    max_attestation_age_s: float | None = 300.0
    # A non-AWS root for development and demos only; loudly logged.
    dev_root_pem: Path | None = None
    # Registry lookups in-process from the KV bucket ("local") or via the registry actor ("actor").
    registry_lookups: str = "local"
    # Capability calls deduplicated in this process ("local") or across the node's dispatchers
    # in the relay_dedupe KV bucket ("shared": for more than one dispatch-capability replica).
    dedupe: str = "local"
    metrics_port: int | None = None
    gateway_id: str = "gateway"
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dedupe not in {"local", "shared"}:
            raise ValueError(f"dedupe must be 'local' or 'shared', got {self.dedupe!r}")
        if self.registry_lookups not in {"local", "actor"}:
            raise ValueError(
                f"registry lookups must be 'local' or 'actor', got {self.registry_lookups!r}"
            )

    @classmethod
    def from_env(cls, **overrides: object) -> NodeSettings:
        values: dict[str, object] = {
            "don": os.environ.get("RELAY_DON", DEFAULT_DON),
            "node": os.environ.get("RELAY_NODE", DEFAULT_NODE),
            "nats_url": os.environ.get("RELAY_NATS_URL", "nats://127.0.0.1:4222"),
            "enabled": _env_bool("RELAY_ENABLED", True),
            "request_timeout_s": _env_float("RELAY_REQUEST_TIMEOUT_S", 10.0),
            "stage_attempt_timeout_s": _env_float("RELAY_STAGE_ATTEMPT_TIMEOUT_S", 1.0),
            "registry_lookups": os.environ.get("RELAY_REGISTRY_LOOKUPS", "local"),
            "dedupe": os.environ.get("RELAY_DEDUPE", "local"),
        }
        max_age = os.environ.get("RELAY_MAX_ATTESTATION_AGE_S")
        if max_age is not None:
            values["max_attestation_age_s"] = (
                None if max_age.strip().lower() in {"", "none", "off"} else float(max_age)
            )
        metrics_port = os.environ.get("RELAY_METRICS_PORT")
        if metrics_port:
            values["metrics_port"] = int(metrics_port)
        dev_root = os.environ.get("RELAY_DEV_ROOT_PEM")
        if dev_root:
            values["dev_root_pem"] = Path(dev_root)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]
