"""Registry seed files: parsing, validation, their bucket entries and rendering a view back."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas import bus
from tests.conftest import REPO_ROOT
from workers.registry import actor as registry
from workers.registry.store import parse_seed, read_seed_file, seed_entries, to_seed
from workers.registry.view import RegistryDataError, build_view, capability_key

EXAMPLE = REPO_ROOT / "deploy" / "registry.example.json"
CW = registry.CONFIDENTIAL_WORKFLOWS
PCR = {"pcr0": "0a" * 48, "pcr1": "0B" * 48, "pcr2": "0c" * 48}


def seed(
    configs: dict[str, Any] | None = None, nodes: dict[str, Any] | None = None, **don: Any
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": 2,
        "name": "wf",
        "f": 0,
        "members": ["w"],
        "capabilities": [CW],
        "configs": configs
        if configs is not None
        else {CW: {"Enclaves": [{"trustedValues": [PCR]}]}},
    }
    d.update(don)
    return {"dons": [d], "nodes": nodes or {}}


def entries_of(doc: dict[str, Any]) -> dict[str, bytes]:
    return seed_entries(parse_seed(json.dumps(doc).encode()))


def problems_of(doc: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(RegistryDataError) as exc:
        entries_of(doc)
    return exc.value.problems


def test_the_example_seed_serves_every_lookup() -> None:
    """deploy/registry.example.json yields measurements, vault, echo, local node and relay DON."""
    view = build_view(read_seed_file(EXAMPLE), revision=1)
    measured = registry.measurements(view)
    assert isinstance(measured, bus.Measurements)
    assert json.loads(measured.trusted_values[0])["pcr0"].startswith("ec74bfbe")
    assert isinstance(registry.capability(view, "vault@1.0.0"), bus.CapabilityInfo)
    assert isinstance(registry.capability(view, "echo@1.0.0"), bus.CapabilityInfo)
    assert isinstance(registry.local_node(view, "node-0"), bus.LocalNode)
    relay = registry.don(view, "relay-don")
    assert isinstance(relay, bus.DonInfo)
    assert (relay.f, len(relay.members)) == (1, 4)


def test_an_inline_pcr_object_is_stored_as_its_compact_json_bytes() -> None:
    """The stored trusted value is base64 of the object's compact JSON, keys in written order."""
    entries = entries_of(seed())
    stored = msgspec.json.decode(entries[capability_key(2, CW)])
    raw = base64.b64decode(stored["Enclaves"][0]["trustedValues"][0])
    assert raw == json.dumps(PCR, separators=(",", ":")).encode()


def test_a_base64_trusted_value_is_kept_byte_for_byte() -> None:
    """A string trusted value is the exact bytes, even when they are not a PCR object."""
    odd = base64.b64encode(b'{ "pcr0" : "00" }').decode()
    entries = entries_of(seed({CW: {"Enclaves": [{"trustedValues": [odd]}]}}))
    measured = registry.measurements(build_view(entries, revision=1))
    assert isinstance(measured, bus.Measurements)
    assert measured.trusted_values == [b'{ "pcr0" : "00" }']


def test_show_json_output_loads_back_to_the_same_bucket() -> None:
    """Rendering a view as a seed and loading that seed reproduces every key and value."""
    odd = base64.b64encode(b"\x00raw").decode()
    doc = seed({CW: {"enclaves": [{"TrustedValues": [PCR, odd], "caRootsPEM": "P"}]}, "x@1": None})
    entries = entries_of(doc)
    rendered = to_seed(build_view(entries, revision=1))
    assert entries_of(rendered) == entries
    values = rendered["dons"][0]["configs"][CW]["enclaves"][0]["TrustedValues"]
    assert values == [PCR, odd]


def test_the_example_round_trips_through_show_json() -> None:
    """The shipped example survives render-and-reload unchanged."""
    entries = read_seed_file(EXAMPLE)
    assert entries_of(to_seed(build_view(entries, revision=1))) == entries


@pytest.mark.parametrize(
    ("pcr", "fragment"),
    [
        ({"pcr0": "aa", "pcr1": "bb"}, "pcr2 must be a non-empty hex string"),
        ({**PCR, "pcr1": "abc"}, "pcr1 must be a non-empty hex string"),
        ({**PCR, "pcr0": "zz"}, "pcr0 must be a non-empty hex string"),
        ("%%%", "not a PCR object nor valid base64"),
        (7, "a trusted value is a PCR object or a base64 string"),
    ],
)
def test_bad_trusted_values_are_refused_with_their_path(pcr: Any, fragment: str) -> None:
    """A typo in a PCR set is caught before anything is written."""
    problems = problems_of(seed({CW: {"Enclaves": [{"trustedValues": [pcr]}]}}))
    assert any(fragment in p and "Enclaves[0].trustedValues[0]" in p for p in problems), problems


def test_an_enclave_config_that_would_not_unwrap_is_refused() -> None:
    """A config with Enclaves the actor could not unwrap is an error in a seed."""
    problems = problems_of(seed({CW: {"Enclaves": [{"caRootsPEM": 1}]}}))
    assert problems == (
        f"DON 2 config {CW}: Enclaves[0].caRootsPEM: expected a string, got number",
    )


def test_a_node_pointing_at_an_undefined_don_is_refused() -> None:
    """LocalNode would fail for that node, so the seed is rejected."""
    problems = problems_of(seed(nodes={"node-0": {"workflow_don_id": 9}}))
    assert problems == ("node node-0: workflow DON 9 is not defined",)


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"dons": [], "extra": 1}, "Object contains unknown field `extra`"),
        ({"dons": [{"id": 1, "name": "a", "f": 0, "members": ["m"], "F": 1}]}, "unknown field `F`"),
        ({"nodes": {}}, "missing required field `dons`"),
    ],
)
def test_seed_typos_are_refused(doc: dict[str, Any], fragment: str) -> None:
    """Unknown or missing fields in a human-written seed are errors, not silently dropped."""
    with pytest.raises(RegistryDataError) as exc:
        parse_seed(json.dumps(doc).encode())
    assert fragment in exc.value.problems[0]


def test_duplicate_don_ids_and_bad_ids_are_refused() -> None:
    """Each DON id appears once and is at least 1."""
    base = seed()["dons"][0]
    doc = {"dons": [base, {**base, "name": "again"}, {**base, "id": 0, "name": "zero"}]}
    problems = problems_of(doc)
    assert "DON id 2 appears twice" in problems
    assert "DON 0: id must be at least 1" in problems


def test_the_record_rules_of_the_bucket_apply_to_seeds() -> None:
    """A seed goes through the actor's own validation (here N >= 3F+1)."""
    problems = problems_of(seed(f=1))
    assert problems == ("DON 2: 1 members cannot tolerate f=1 (need at least 4)",)


def test_a_missing_seed_file_is_an_os_error(tmp_path: Path) -> None:
    """Reading a path that does not exist raises OSError for the CLI to report."""
    with pytest.raises(OSError, match="No such file"):
        read_seed_file(tmp_path / "absent.json")


def test_a_seed_nested_too_deep_to_decode_is_bad_data() -> None:
    """`relay registry load` of such a file says what is wrong (exit 2), never a traceback."""
    deep = b'{"dons": [{"id": 1, "configs": {"x": ' + b"[" * 2000 + b"]" * 2000 + b"}}]}"
    with pytest.raises(RegistryDataError, match="seed file: maximum recursion depth"):
        parse_seed(deep)
