"""Peer ids in the registry: validated on load, round-tripped by show, served as the trust lookup."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas import bus
from workers.registry import actor as registry
from workers.registry.store import parse_seed, seed_entries, to_seed
from workers.registry.view import RegistryDataError, RegistryView, build_view

RELAY_KEYS = [bytes([i]) * 32 for i in range(1, 5)]
WF_KEYS = [bytes([0x40 + i]) * 32 for i in range(1, 5)]


def doc(relay: dict[str, Any] | None = None, wf: dict[str, Any] | None = None) -> dict[str, Any]:
    relay_don: dict[str, Any] = {
        "id": 1,
        "name": "relay-don",
        "f": 1,
        "members": ["node-0", "node-1", "node-2", "node-3"],
        "peer_ids": [k.hex() for k in RELAY_KEYS],
    }
    wf_don: dict[str, Any] = {
        "id": 2,
        "name": "workflow-don",
        "f": 1,
        "members": ["wf-0", "wf-1", "wf-2", "wf-3"],
        "peer_ids": [k.hex() for k in WF_KEYS],
    }
    relay_don.update(relay or {})
    wf_don.update(wf or {})
    nodes = {f"node-{i}": {"workflow_don_id": 2} for i in range(4)}
    return {"dons": [relay_don, wf_don], "nodes": nodes}


def view_of(document: dict[str, Any]) -> RegistryView:
    return build_view(seed_entries(parse_seed(json.dumps(document).encode())), revision=3)


def problems_of(document: dict[str, Any]) -> str:
    with pytest.raises(RegistryDataError) as caught:
        view_of(document)
    return "; ".join(caught.value.problems)


def test_the_trust_lookup_gives_both_dons_keys_in_member_order() -> None:
    """trust() answers the relay DON's F and signers, this node's key, and the Workflow DON's."""
    reply = registry.trust(view_of(doc()), "relay-don", "node-2")
    assert isinstance(reply, bus.Trust)
    assert reply.relay_f == 1
    assert reply.relay_signers == RELAY_KEYS
    assert reply.own_peer_id == RELAY_KEYS[2]
    assert reply.workflow_f == 1
    assert reply.workflow_members == WF_KEYS
    assert reply.require_bft_quorum is False
    assert reply.revision == 3


def test_a_workflow_don_asking_for_bft_says_so_in_the_trust_lookup() -> None:
    """require_bft_quorum on the Workflow DON's record reaches the trust reply."""
    reply = registry.trust(view_of(doc(wf={"require_bft_quorum": True})), "relay-don", "node-0")
    assert isinstance(reply, bus.Trust)
    assert reply.require_bft_quorum is True


def test_upper_case_peer_ids_are_stored_lower_case_and_show_round_trips() -> None:
    """A peer id in capitals is the same key; show --json writes it lower case and loads back."""
    upper = doc(relay={"peer_ids": [k.hex().upper() for k in RELAY_KEYS]})
    view = view_of(upper)
    assert view.don_by_name("relay-don").peer_ids == tuple(RELAY_KEYS)  # type: ignore[union-attr]
    shown = to_seed(view)
    assert shown["dons"][0]["peer_ids"] == [k.hex() for k in RELAY_KEYS]
    assert view_of(shown).dons == view.dons


def test_an_n1_registry_shows_without_peer_id_fields() -> None:
    """A DON without peer ids is written by show exactly as before (no empty fields)."""
    shown = to_seed(view_of(doc(relay={"peer_ids": []}, wf={"peer_ids": []})))
    assert all("peer_ids" not in d and "require_bft_quorum" not in d for d in shown["dons"])


@pytest.mark.parametrize(
    ("peer_ids", "fragment"),
    [
        ([k.hex() for k in RELAY_KEYS[:3]], "3 peer ids for 4 members"),
        (
            ["zz" * 32] + [k.hex() for k in RELAY_KEYS[1:]],
            "peer_ids[0] is not an Ed25519 public key",
        ),
        (
            ["ab" * 31] + [k.hex() for k in RELAY_KEYS[1:]],
            "peer_ids[0] is not an Ed25519 public key",
        ),
        ([RELAY_KEYS[0].hex()] * 2 + [k.hex() for k in RELAY_KEYS[2:]], "peer ids must be unique"),
    ],
)
def test_bad_peer_ids_are_refused_by_load(peer_ids: list[str], fragment: str) -> None:
    """Wrong count, non-hex, wrong length and duplicates each reject the whole file."""
    assert fragment in problems_of(doc(relay={"peer_ids": peer_ids}))


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (doc(relay={"peer_ids": []}), "relay DON relay-don has no peer ids in the registry"),
        (doc(wf={"peer_ids": []}), "workflow DON 2 has no peer ids in the registry"),
    ],
)
def test_a_trust_lookup_without_peer_ids_fails_closed(
    document: dict[str, Any], fragment: str
) -> None:
    """A DON without peer ids cannot anchor the current protocol: -32603 naming which."""
    reply = registry.trust(view_of(document), "relay-don", "node-0")
    assert isinstance(reply, bus.StageError)
    assert reply.code == -32603
    assert reply.detail == f"failed to get relay trust: {fragment}"


def test_a_node_outside_the_relay_don_gets_no_trust() -> None:
    """The asking node must be a member of its relay DON, or the lookup fails closed."""
    reply = registry.trust(view_of(doc()), "relay-don", "node-9")
    assert isinstance(reply, bus.StageError)
    assert (
        reply.detail
        == "failed to get relay trust: node node-9 is not a member of relay DON relay-don"
    )


def test_an_unloaded_registry_gives_no_trust() -> None:
    """Before the bucket was read, the trust lookup fails closed like every other."""
    reply = registry.trust(RegistryView.unloaded(), "relay-don", "node-0")
    assert isinstance(reply, bus.StageError)
    assert registry.NOT_LOADED in reply.detail


def test_the_example_seeds_peer_ids_are_the_public_development_keys_of_its_members() -> None:
    """deploy/registry.example.json's relay and workflow DONs carry dev_peer_id of each member."""
    from workers.registry.devseed import EXAMPLE_SEED, dev_peer_id
    from workers.registry.store import read_seed_file

    view = build_view(read_seed_file(EXAMPLE_SEED), revision=1)
    for name in ("relay-don", "workflow-don"):
        don = view.don_by_name(name)
        assert don is not None
        assert don.peer_ids == tuple(dev_peer_id(m) for m in don.members)
    reply = registry.trust(view, "relay-don", "node-0")
    assert isinstance(reply, bus.Trust)
    assert reply.own_peer_id == dev_peer_id("node-0")


def test_relay_registry_load_refuses_a_file_with_a_bad_peer_id_before_connecting(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2 with the problem listed; nothing is written (no server is even reachable)."""
    from workers.cli import main

    bad = doc(relay={"peer_ids": ["00" * 32] * 4})
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(bad))
    assert main(["registry", "load", str(path), "--nats", "nats://127.0.0.1:1"]) == 2
    assert "DON 1: peer ids must be unique" in capsys.readouterr().err


def test_registry_show_names_peer_ids_and_what_the_trust_lookup_answers() -> None:
    """The human view lists each DON's peer ids and each relay member's trust lookup."""
    from workers.cli.registry import render

    bft = view_of(doc(wf={"require_bft_quorum": True}))
    lines = render(bft).splitlines()
    assert (
        f"  peer ids: node-0 {RELAY_KEYS[0].hex()[:16]}…, node-1 {RELAY_KEYS[1].hex()[:16]}…, "
        f"node-2 {RELAY_KEYS[2].hex()[:16]}…, node-3 {RELAY_KEYS[3].hex()[:16]}…" in lines
    )
    assert any("require-bft-quorum" in line for line in lines if line.startswith("DON 2"))
    assert (
        f"lookup trust relay-don/node-1 (RELAY_PROTOCOL=current): signs as "
        f"{RELAY_KEYS[1].hex()[:16]}…; EnclaveConfig: F>=1, 4 signers; compute requests: 3 of 4"
        " Workflow-DON members"
    ) in lines
    # The Workflow DON's members are not relay nodes (no `nodes.` entry): no trust line.
    assert not any(line.startswith("lookup trust workflow-don/") for line in lines)
