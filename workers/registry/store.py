"""Seed files and bucket I/O for the registry: what `relay registry load/show`, `relay up` and the demo use.

A seed file is human-written JSON (docs/registry.md, deploy/registry.example.json):

    {"dons": [{"id": 1, "name": "relay-don", "f": 1, "members": [...], "config_version": 1,
               "accepts_workflows": false, "capabilities": ["..."], "configs": {"<cap id>": <config>}}],
     "nodes": {"<node address>": {"workflow_don_id": 2}}}

`configs` are the default configs of the DON's capabilities (JSON, `null` for "no default
config"). Inside a config, every `Enclaves[].trustedValues[]` item may be written inline as a JSON
PCR object (stored as its compact JSON bytes) or as a base64 string of the exact bytes. `to_seed`
renders a view back into this form, so `show --json` output loads again unchanged.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from schemas import subjects
from workers.registry.view import (
    CAPABILITIES,
    DONS,
    KNOWN_PREFIXES,
    NODES,
    DonRecord,
    NodeRecord,
    RegistryDataError,
    RegistryView,
    build_view,
    capability_key,
    don_key,
    node_key,
)
from workers.runtime import jetstream

# Enough history to see what the last few loads changed (`nats kv history`), no more.
BUCKET_HISTORY = 5
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


class SeedDon(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # Unknown fields are refused here (unlike in the bucket): a typo in a seed must not pass silently.
    id: int
    name: str
    f: int
    members: list[str]
    config_version: int = 1
    accepts_workflows: bool = False
    is_public: bool = False
    capabilities: list[str] = msgspec.field(default_factory=list)
    configs: dict[str, Any] = msgspec.field(default_factory=dict)
    peer_ids: list[str] = msgspec.field(default_factory=list)
    require_bft_quorum: bool = False
    comment: str = ""


class SeedNode(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    workflow_don_id: int
    comment: str = ""


class Seed(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    dons: list[SeedDon]
    nodes: dict[str, SeedNode] = msgspec.field(default_factory=dict)
    comment: str = ""


# --- seed -> bucket entries -------------------------------------------------------------------


def _is_field(key: str, name: str) -> bool:
    return key.lower() == name.lower()


def _pcr_problems(value: dict[str, Any], where: str) -> list[str]:
    problems = []
    for name in ("pcr0", "pcr1", "pcr2"):
        pcr = value.get(name)
        if not isinstance(pcr, str) or not pcr or not _HEX.fullmatch(pcr):
            problems.append(f"{where}: {name} must be a non-empty hex string")
    return problems


def _encode_trusted(value: Any, where: str, problems: list[str]) -> Any:
    if isinstance(value, dict):
        problems.extend(_pcr_problems(value, where))
        return base64.b64encode(msgspec.json.encode(value)).decode("ascii")
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except ValueError as exc:
            problems.append(f"{where}: not a PCR object nor valid base64: {exc}")
        return value
    problems.append(f"{where}: a trusted value is a PCR object or a base64 string")
    return value


def _map_trusted(config: Any, where: str, fn: Callable[[Any, str], Any]) -> Any:
    """Apply fn(item, where) to every Enclaves[].trustedValues[] item; the rest is unchanged."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    for key, enclaves in config.items():
        if not _is_field(key, "Enclaves") or not isinstance(enclaves, list):
            continue
        new_enclaves = []
        for i, enclave in enumerate(enclaves):
            if isinstance(enclave, dict):
                enclave = dict(enclave)
                for field, values in list(enclave.items()):
                    if _is_field(field, "trustedValues") and isinstance(values, list):
                        enclave[field] = [
                            fn(v, f"{where}.{key}[{i}].{field}[{j}]") for j, v in enumerate(values)
                        ]
            new_enclaves.append(enclave)
        out[key] = new_enclaves
    return out


def seed_entries(seed: Seed) -> dict[str, bytes]:
    """The bucket content a seed stands for; raises RegistryDataError naming every problem."""
    entries: dict[str, bytes] = {}
    problems: list[str] = []
    seen: set[int] = set()
    for d in seed.dons:
        if d.id in seen:
            problems.append(f"DON id {d.id} appears twice")
            continue
        seen.add(d.id)
        if d.id < 1:
            # Checked here too: don_key of a non-positive id would not be a valid key.
            problems.append(f"DON {d.id}: id must be at least 1")
            continue
        record = DonRecord(
            id=d.id,
            name=d.name,
            f=d.f,
            members=d.members,
            config_version=d.config_version,
            capabilities=sorted(d.capabilities),
            accepts_workflows=d.accepts_workflows,
            is_public=d.is_public,
            # One spelling per key in the bucket, whatever case the file used.
            peer_ids=[p.lower() for p in d.peer_ids],
            require_bft_quorum=d.require_bft_quorum,
        )
        entries[don_key(d.id)] = msgspec.json.encode(record)
        for cap_id, config in d.configs.items():
            if not cap_id:
                problems.append(f"DON {d.id}: a config has an empty capability id")
                continue
            where = f"DON {d.id} config {cap_id}"
            stored = _map_trusted(config, where, lambda v, w: _encode_trusted(v, w, problems))
            entries[capability_key(d.id, cap_id)] = msgspec.json.encode(stored)
    for address, node in seed.nodes.items():
        if not address:
            problems.append("a node address is empty")
            continue
        entries[node_key(address)] = msgspec.json.encode(
            NodeRecord(workflow_don_id=node.workflow_don_id)
        )
    if problems:
        raise RegistryDataError(problems)
    view = build_view(entries, revision=1)  # the actor's own validation, before anything is written
    problems.extend(_seed_view_problems(view))
    if problems:
        raise RegistryDataError(problems)
    return entries


def _seed_view_problems(view: RegistryView) -> list[str]:
    """What the actor would accept but is surely a mistake in a file meant for it."""
    problems = []
    for (don_id, cap_id), config in view.configs.items():
        if config.unwrap_error and _mentions_enclaves(config.raw):
            problems.append(f"DON {don_id} config {cap_id}: {config.unwrap_error}")
    for node in view.nodes.values():
        if node.workflow_don_id not in view.dons:
            problems.append(
                f"node {node.address}: workflow DON {node.workflow_don_id} is not defined"
            )
    return problems


def _mentions_enclaves(raw: bytes) -> bool:
    decoded = msgspec.json.decode(raw)
    return isinstance(decoded, dict) and any(_is_field(k, "Enclaves") for k in decoded)


def parse_seed(data: bytes) -> Seed:
    try:
        return msgspec.json.decode(data, type=Seed)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        raise RegistryDataError([f"seed file: {exc}"]) from exc


def read_seed_file(path: Path) -> dict[str, bytes]:
    """The bucket entries of a seed file; RegistryDataError or OSError say what is wrong."""
    return seed_entries(parse_seed(path.read_bytes()))


# --- view -> seed (show --json) ---------------------------------------------------------------


def _decode_trusted(value: Any, _where: str) -> Any:
    # Inline only what re-encodes to the very same bytes, so the rendering loads back unchanged.
    if not isinstance(value, str):
        return value
    try:
        raw = base64.b64decode(value, validate=True)
        obj = msgspec.json.decode(raw)
    except (ValueError, msgspec.DecodeError):
        return value
    if isinstance(obj, dict) and msgspec.json.encode(obj) == raw:
        return obj
    return value


def to_seed(view: RegistryView) -> dict[str, Any]:
    """The view as a seed document (plain JSON data)."""
    dons = []
    for d in view.dons.values():
        configs = {
            cap: _map_trusted(msgspec.json.decode(c.raw), "", _decode_trusted)
            for (don_id, cap), c in sorted(view.configs.items())
            if don_id == d.id
        }
        don: dict[str, Any] = {
            "id": d.id,
            "name": d.name,
            "f": d.f,
            "members": list(d.members),
            "config_version": d.config_version,
            "accepts_workflows": d.accepts_workflows,
            "is_public": d.is_public,
            "capabilities": list(d.capabilities),
            "configs": configs,
        }
        # Written only when set, so an N1 registry shows exactly as before.
        if d.peer_ids:
            don["peer_ids"] = [p.hex() for p in d.peer_ids]
        if d.require_bft_quorum:
            don["require_bft_quorum"] = True
        dons.append(don)
    nodes = {a: {"workflow_don_id": n.workflow_don_id} for a, n in sorted(view.nodes.items())}
    return {"dons": dons, "nodes": nodes}


# --- bucket I/O -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadResult:
    put: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: int
    revision: int
    created_bucket: bool
    # The bucket's replicas after the load, and whether this load changed them.
    replicas: int = 1
    changed_replicas: bool = False


async def open_bucket(
    nc: Client,
    bucket: str = subjects.REGISTRY_BUCKET,
    *,
    create: bool,
    timeout_s: float = 5.0,
    domain: str | None = None,
    replicas: int | None = None,
) -> tuple[KeyValue, bool]:
    """The bucket in JetStream `domain`, created if asked and missing; returns (kv, created).

    `replicas` (None: leave as is, 1 for a new bucket) is applied to a new bucket, and to an
    existing one whose replicas differ: JetStream moves a live stream between R1 and R3 without
    losing a write, which is how a registry created on one server becomes replicated once the
    cluster exists (`relay registry load --replicas 3`).
    """
    js = jetstream.context(nc, timeout_s=timeout_s, domain=domain)
    try:
        kv = await jetstream.key_value(js, bucket, domain=domain)
    except nats.js.errors.BucketNotFoundError:
        if not create:
            raise
    else:
        if replicas is not None:
            await _ensure_replicas(js, bucket, replicas)
        return kv, False
    await js.create_key_value(
        bucket=bucket,
        history=BUCKET_HISTORY,
        description="relay capabilities registry (docs/registry.md)",
        replicas=replicas or 1,
    )
    return await jetstream.key_value(js, bucket, domain=domain), True


async def _ensure_replicas(js: JetStreamContext, bucket: str, replicas: int) -> bool:
    stream = f"KV_{bucket}"
    info = await js.stream_info(stream)
    if info.config.num_replicas == replicas:
        return False
    await js.update_stream(info.config.evolve(num_replicas=replicas))
    return True


async def bucket_replicas(
    nc: Client,
    bucket: str = subjects.REGISTRY_BUCKET,
    *,
    domain: str | None = None,
    timeout_s: float = 5.0,
) -> int:
    """How many replicas the bucket's stream has (what `relay registry show` reports)."""
    js = jetstream.context(nc, timeout_s=timeout_s, domain=domain)
    info = await js.stream_info(f"KV_{bucket}")
    return info.config.num_replicas or 1


async def initial_entries(
    watcher: KeyValue.KeyWatcher, last_seq: int, *, timeout_s: float, settle_s: float
) -> tuple[dict[str, bytes], int]:
    """A fresh watch's initial delivery: the last value of every key, up to at least `last_seq`
    (the stream's last sequence, read before the watch started), and the highest revision seen.

    Why not simply "until the None marker": nats-py sends that marker as soon as the consumer
    has nothing pending on the server, which is also the case when the server has pushed every
    value but this client has not read one yet. The marker then comes first and the values after
    it, and a view built at the marker would be empty (seen here on a busy machine: an actor
    failed its first requests closed). So after the marker the load goes on until it has seen
    `last_seq`, for at most `settle_s` more: a sequence that expired meanwhile never comes.
    Without any marker within `timeout_s`, nats.errors.TimeoutError: the watch is lost.
    """
    entries: dict[str, bytes] = {}
    seen = 0
    settle_until: float | None = None
    while True:
        wait = timeout_s
        if settle_until is not None:
            wait = settle_until - time.monotonic()
            if wait <= 0:
                break
        try:
            entry = await watcher.updates(timeout=wait)  # type: ignore[no-untyped-call]
        except nats.errors.TimeoutError:
            if settle_until is None:
                raise
            break
        if entry is None:
            if seen >= last_seq:
                break
            settle_until = time.monotonic() + settle_s
            continue
        seen = max(seen, entry.revision or 0)
        if entry.operation in ("DEL", "PURGE"):
            entries.pop(entry.key, None)
        else:
            entries[entry.key] = entry.value or b""
        if settle_until is not None and seen >= last_seq:
            break
    return entries, seen


async def read_entries(kv: KeyValue, *, timeout_s: float = 5.0) -> tuple[dict[str, bytes], int]:
    """Every live key and value of the bucket, and the stream sequence they reflect."""
    status = await kv.status()
    last_seq: int = status.stream_info.state.last_seq
    watcher = await kv.watchall()
    try:
        entries, seen = await initial_entries(
            watcher, last_seq, timeout_s=timeout_s, settle_s=timeout_s / 5
        )
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return entries, max(last_seq, seen)


def _write_order(key: str) -> int:
    # Configs before the DONs that list them, DONs before the nodes that point at them: a reader
    # that catches the writes half-way fails a lookup rather than using a half-written DON.
    return {CAPABILITIES: 0, DONS: 1, NODES: 2}.get(key.split(".")[0], 3)


async def load_entries(
    nc: Client,
    entries: Mapping[str, bytes],
    *,
    bucket: str = subjects.REGISTRY_BUCKET,
    prune: bool = True,
    domain: str | None = None,
    replicas: int | None = None,
) -> LoadResult:
    """Make the bucket hold exactly `entries` under the layout's prefixes (create it if needed).

    Unchanged keys are not rewritten (no new revision, watchers see nothing). With `prune`, keys
    under `dons.`, `capabilities.` and `nodes.` that the entries lack are deleted; other keys are
    never touched.
    """
    before = None
    if replicas is not None:
        try:
            before = await bucket_replicas(nc, bucket, domain=domain)
        except nats.js.errors.NotFoundError:
            before = None
    kv, created = await open_bucket(nc, bucket, create=True, domain=domain, replicas=replicas)
    current, revision = await read_entries(kv)
    puts = sorted(
        (k for k in entries if current.get(k) != entries[k]), key=lambda k: (_write_order(k), k)
    )
    for key in puts:
        revision = await kv.put(key, entries[key])
    deleted: list[str] = []
    if prune:
        for key in sorted(current, key=lambda k: (-_write_order(k), k)):
            if key not in entries and key.split(".")[0] in KNOWN_PREFIXES:
                await kv.delete(key)
                deleted.append(key)
        if deleted:
            revision = (await kv.status()).stream_info.state.last_seq
    return LoadResult(
        put=tuple(puts),
        deleted=tuple(deleted),
        unchanged=len(entries) - len(puts),
        revision=revision,
        created_bucket=created,
        replicas=await bucket_replicas(nc, bucket, domain=domain),
        changed_replicas=before is not None and before != replicas,
    )


async def load_seed_file(
    nc: Client,
    path: Path,
    *,
    bucket: str = subjects.REGISTRY_BUCKET,
    prune: bool = True,
    domain: str | None = None,
    replicas: int | None = None,
) -> LoadResult:
    """Validate a seed file, then load it (`relay up`, the demo and `relay registry load`)."""
    return await load_entries(
        nc, read_seed_file(path), bucket=bucket, prune=prune, domain=domain, replicas=replicas
    )


async def read_view(
    nc: Client, *, bucket: str = subjects.REGISTRY_BUCKET, domain: str | None = None
) -> RegistryView:
    """The bucket's current view, built exactly as the actor builds it (RegistryDataError if bad)."""
    kv, _ = await open_bucket(nc, bucket, create=False, domain=domain)
    entries, revision = await read_entries(kv)
    return build_view(entries, revision=max(revision, 1))
