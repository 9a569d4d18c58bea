"""The dependency direction of the tree: schemas <- pure libraries <- runtime <- actors <- node/CLI.

Each module's imports (including those inside functions) are read from its source with `ast`, so
a lazy import cannot hide a layering break.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Lower ranks may be imported by higher ones, never the reverse.
RANKS: dict[str, int] = {
    "schemas": 0,
    "workers.attestation": 1,
    "workers.protocol": 1,
    # The enclave client library is pure; only its optional NATS transport sits with runtime.
    "workers.enclave": 1,
    "workers.enclave.nats_transport": 2,
    "workers.runtime": 2,
    "workers.ingress": 3,
    "workers.verifier": 3,
    "workers.registry": 3,
    "workers.dispatch": 3,
    "workers.reference": 3,
    "workers.gateway": 3,
    "workers.deploy": 3,
    "workers.node": 4,
    "workers.cli": 4,
    "workers.bench": 4,
}

# Actor families that another actor family may use: the registry is every actor's source of truth.
SHARED_ACTOR_FAMILIES = {"workers.registry"}

# Modules that must stay pure (no NATS, no asyncio) although their family is an actor's.
PURE_MODULES = {
    "workers.registry.view",
    "workers.dispatch.goproto",
    "workers.cli.tail_format",
    "workers.cli.svc_format",
}

IMPURE_ROOTS = ("nats", "asyncio", "aiohttp")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Iterator[tuple[str, Path]]:
    for top in ("schemas", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "gen" in path.relative_to(ROOT).parts:
                continue
            yield _module_name(path), path


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _family(name: str) -> str | None:
    matches = [prefix for prefix in RANKS if name == prefix or name.startswith(prefix + ".")]
    return max(matches, key=len) if matches else None


ALL_MODULES = dict(_modules())


def test_every_module_belongs_to_a_layer() -> None:
    """A new top-level module under workers/ must be placed in a layer before it can land."""
    unplaced = [name for name in ALL_MODULES if name != "workers" and _family(name) is None]
    assert unplaced == []


@pytest.mark.parametrize("module", sorted(ALL_MODULES))
def test_a_module_imports_only_its_own_or_lower_layers(module: str) -> None:
    """No module reaches up the layers, and actor families use no other actor but the registry."""
    family = _family(module)
    if family is None:
        return
    rank = RANKS[family]
    bad = []
    for imported in _imports(ALL_MODULES[module], module):
        target = _family(imported)
        if target is None or target == family:
            continue
        reaches_up = RANKS[target] > rank
        uses_a_peer_actor = RANKS[target] == rank == 3 and target not in SHARED_ACTOR_FAMILIES
        if reaches_up or uses_a_peer_actor:
            bad.append(imported)
    assert bad == []


@pytest.mark.parametrize(
    "module",
    sorted(
        name
        for name in ALL_MODULES
        if name in PURE_MODULES or RANKS.get(_family(name) or "", 9) <= 1
    ),
)
def test_a_pure_library_imports_no_nats_and_no_event_loop(module: str) -> None:
    """The wire contract and the pure libraries run without a bus: no NATS, asyncio or aiohttp."""
    impure = [
        imported
        for imported in _imports(ALL_MODULES[module], module)
        if imported.split(".")[0] in IMPURE_ROOTS
    ]
    assert impure == []


def test_the_layer_check_sees_a_lazy_import_inside_a_function(tmp_path: Path) -> None:
    """The import reader finds an import hidden in a function body, the usual way to dodge a cycle."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from workers.node import process\n    import nats\n")
    assert {"workers.node", "workers.node.process", "nats"} <= _imports(source, "lazy")
