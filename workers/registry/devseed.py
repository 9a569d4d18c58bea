"""Registry seeds for development, tests and the demo: the example seed with chosen PCR sets.

Development node keys. The example seed (deploy/registry.example.json) names a peer id for every
member of its relay and workflow DONs, so that `relay up` and the demo can serve the current
protocol out of the box. Their seeds are derived from the member's address by `dev_node_seed`:
anyone can compute them, so they are PUBLIC, like the example vault's key; a real node makes its
own with `relay keys new`, and tests make their own too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from workers.registry.store import parse_seed, seed_entries

EXAMPLE_SEED = Path(__file__).resolve().parents[2] / "deploy" / "registry.example.json"
CONFIDENTIAL_WORKFLOWS = "confidential-workflows@1.0.0-alpha"
_DEV_KEY_LABEL = b"confidential relay PUBLIC development node key\x00"


def dev_node_seed(address: str) -> bytes:
    """The public development key seed of a member address (never for production)."""
    return hashlib.sha256(_DEV_KEY_LABEL + address.encode()).digest()


def dev_peer_id(address: str) -> bytes:
    """The peer id (Ed25519 public key) of `dev_node_seed(address)`."""
    return (
        Ed25519PrivateKey.from_private_bytes(dev_node_seed(address)).public_key().public_bytes_raw()
    )


def seed_with_measurements(
    trusted_values: Sequence[bytes],
    *,
    members: Sequence[str] | None = None,
    f: int | None = None,
    peer_ids: Sequence[bytes] | None = None,
    workflow_peer_ids: Sequence[bytes] | None = None,
    require_bft_quorum: bool | None = None,
    base: Path = EXAMPLE_SEED,
) -> dict[str, Any]:
    """The example seed, its enclave trusted values replaced (and the relay DON's members/F).

    New relay members drop the example's peer ids unless `peer_ids` (one per member) are given;
    `workflow_peer_ids` replace the workflow DON's (its member list is resized to match).
    """
    seed: dict[str, Any] = json.loads(base.read_bytes())
    for don in seed["dons"]:
        configs = don.get("configs", {})
        if CONFIDENTIAL_WORKFLOWS in configs:
            enclaves = configs[CONFIDENTIAL_WORKFLOWS]["Enclaves"]
            enclaves[0]["trustedValues"] = [json.loads(v) for v in trusted_values]
            del enclaves[1:]
            if workflow_peer_ids is not None:
                don["peer_ids"] = [p.hex() for p in workflow_peer_ids]
                don["members"] = [f"wf-{i}" for i in range(len(workflow_peer_ids))]
                don["f"] = (len(workflow_peer_ids) - 1) // 3
            if require_bft_quorum is not None:
                don["require_bft_quorum"] = require_bft_quorum
        if don["name"] == "relay-don":
            if members is not None:
                don["members"] = list(members)
                don.pop("peer_ids", None)
                if f is not None:
                    don["f"] = f
                for address in members:
                    seed.setdefault("nodes", {})[address] = {"workflow_don_id": 2}
            if peer_ids is not None:
                don["peer_ids"] = [p.hex() for p in peer_ids]
    return seed


def seed_entries_for(seed: dict[str, Any]) -> dict[str, bytes]:
    """Validate a seed dict and turn it into bucket entries (raises RegistryDataError)."""
    return seed_entries(parse_seed(json.dumps(seed).encode()))
