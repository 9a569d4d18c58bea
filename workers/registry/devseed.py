"""Registry seeds for development, tests and the demo: the example seed with chosen PCR sets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workers.registry.store import parse_seed, seed_entries

EXAMPLE_SEED = Path(__file__).resolve().parents[2] / "deploy" / "registry.example.json"
CONFIDENTIAL_WORKFLOWS = "confidential-workflows@1.0.0-alpha"


def seed_with_measurements(
    trusted_values: Sequence[bytes],
    *,
    members: Sequence[str] | None = None,
    f: int | None = None,
    base: Path = EXAMPLE_SEED,
) -> dict[str, Any]:
    """The example seed, its enclave trusted values replaced (and the relay DON's members/F)."""
    seed: dict[str, Any] = json.loads(base.read_bytes())
    for don in seed["dons"]:
        configs = don.get("configs", {})
        if CONFIDENTIAL_WORKFLOWS in configs:
            enclaves = configs[CONFIDENTIAL_WORKFLOWS]["Enclaves"]
            enclaves[0]["trustedValues"] = [json.loads(v) for v in trusted_values]
            del enclaves[1:]
        if don["name"] == "relay-don" and members is not None:
            don["members"] = list(members)
            if f is not None:
                don["f"] = f
            for address in members:
                seed.setdefault("nodes", {})[address] = {"workflow_don_id": 2}
    return seed


def seed_entries_for(seed: dict[str, Any]) -> dict[str, bytes]:
    """Validate a seed dict and turn it into bucket entries (raises RegistryDataError)."""
    return seed_entries(parse_seed(json.dumps(seed).encode()))
