"""The registry's KV key layout and the immutable view built from the bucket's contents.

Pure: no NATS, no clock. `build_view` turns every (key, value) of the bucket into one
`RegistryView`, or raises `RegistryDataError` listing every problem it found; a caller keeps its
previous view in that case, so a bad write never half-applies. The layout is documented in
docs/registry.md:

    dons.<don id>                          DonRecord JSON
    capabilities.<don id>.<capability>     the capability's default config on that DON (JSON)
    nodes.<node address>                   NodeRecord JSON

`<don id>` is the decimal DON id; `<capability>` and `<node address>` are `encode_token`ed,
which keeps them inside the KV key alphabet `[-/_=.a-zA-Z0-9]` and makes them reversible.
Keys under any other first token are ignored (room for later additions).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgspec

from schemas.gojson_shapes import go_fold
from schemas.subjects import decode_token, encode_token

DONS = "dons"
CAPABILITIES = "capabilities"
NODES = "nodes"
KNOWN_PREFIXES = (DONS, CAPABILITIES, NODES)

# The CapabilitiesRegistry contract stores DON ids as uint32 and never assigns 0.
_MAX_DON_ID = 2**32 - 1


class RegistryDataError(ValueError):
    """The bucket (or a seed) holds data that cannot form a registry view; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(problems))


# --- KV values (JSON) ------------------------------------------------------------------------
# Only ever add fields with defaults: actors of different versions read the same bucket, and
# unknown fields are ignored on decode.


class DonRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One DON as the `dons.<id>` value: who its members are and what it hosts."""

    id: int
    name: str
    f: int
    members: list[str]
    config_version: int = 0
    capabilities: list[str] = msgspec.field(default_factory=list)
    accepts_workflows: bool = False
    is_public: bool = False
    # The members' peer ids (Ed25519 public keys, 64 hex digits), one per member in the same
    # order, or none at all (an N1 DON). The current protocol needs them: a relay DON's are the
    # signers an enclave's EnclaveConfig must list, a Workflow DON's sign compute requests.
    peer_ids: list[str] = msgspec.field(default_factory=list)
    # Workflow-DON authorization needs 2F+1 signatures instead of F+1 (upstream's node setting
    # RequireBFTQuorum; here the DON asks for it, so all relay nodes apply the same threshold).
    require_bft_quorum: bool = False


class NodeRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One node as the `nodes.<address>` value: the workflow DON it serves (LocalNode)."""

    workflow_don_id: int


# --- keys -------------------------------------------------------------------------------------


def don_key(don_id: int) -> str:
    return f"{DONS}.{don_id}"


def capability_key(don_id: int, capability_id: str) -> str:
    return f"{CAPABILITIES}.{don_id}.{encode_token(capability_id)}"


def node_key(address: str) -> str:
    return f"{NODES}.{encode_token(address)}"


@dataclass(frozen=True, slots=True)
class DonKey:
    don_id: int


@dataclass(frozen=True, slots=True)
class CapabilityKey:
    don_id: int
    capability_id: str


@dataclass(frozen=True, slots=True)
class NodeKey:
    address: str


ParsedKey = DonKey | CapabilityKey | NodeKey


def _parse_don_id(token: str, key: str) -> int:
    # Canonical decimal only, so one DON has exactly one key.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise RegistryDataError([f"key {key!r}: DON id {token!r} is not a decimal number"])
    don_id = int(token)
    if not 1 <= don_id <= _MAX_DON_ID:
        raise RegistryDataError([f"key {key!r}: DON id {don_id} is outside 1..{_MAX_DON_ID}"])
    return don_id


def _decode(token: str, key: str, what: str) -> str:
    try:
        return decode_token(token)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryDataError(
            [f"key {key!r}: {what} {token!r} is not encode_token form: {exc}"]
        ) from exc


def parse_key(key: str) -> ParsedKey | None:
    """The meaning of a bucket key; None for a key outside the layout's prefixes."""
    parts = key.split(".")
    head = parts[0]
    if head not in KNOWN_PREFIXES:
        return None
    if head == DONS and len(parts) == 2:
        return DonKey(_parse_don_id(parts[1], key))
    if head == CAPABILITIES and len(parts) == 3:
        return CapabilityKey(_parse_don_id(parts[1], key), _decode(parts[2], key, "capability id"))
    if head == NODES and len(parts) == 2:
        return NodeKey(_decode(parts[1], key, "node address"))
    shapes = {
        DONS: "dons.<don id>",
        CAPABILITIES: "capabilities.<don id>.<capability>",
        NODES: "nodes.<node address>",
    }
    raise RegistryDataError([f"key {key!r} does not have the shape {shapes[head]}"])


# --- the view ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DonView:
    id: int
    name: str
    f: int
    members: tuple[str, ...]
    config_version: int
    capabilities: tuple[str, ...]
    accepts_workflows: bool
    is_public: bool
    peer_ids: tuple[bytes, ...] = ()
    require_bft_quorum: bool = False

    def peer_id_of(self, member: str) -> bytes | None:
        """The peer id registered for `member`; None when it is no member or has none."""
        if not self.peer_ids or member not in self.members:
            return None
        return self.peer_ids[self.members.index(member)]


PEER_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class EnclaveConfig:
    """The unwrapped `Enclaves` of a config: every trusted value in order, the first CA PEM."""

    trusted_values: tuple[bytes, ...]
    ca_roots_pem: str
    enclave_count: int


@dataclass(frozen=True, slots=True)
class CapabilityConfig:
    """One `capabilities.<don>.<cap>` value; `enclaves` or `unwrap_error` is precomputed."""

    don_id: int
    capability_id: str
    raw: bytes
    has_default: bool
    enclaves: EnclaveConfig | None
    unwrap_error: str


@dataclass(frozen=True, slots=True)
class NodeView:
    address: str
    workflow_don_id: int


def _frozen(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(mapping)


@dataclass(frozen=True)
class RegistryView:
    """An immutable snapshot of the registry: swapped whole, never edited.

    `loaded` is False only for the placeholder used before the bucket was ever read, which makes
    every lookup fail closed. `revision` is the KV stream sequence the view reflects (or higher):
    it grows whenever the view changes and names the view in `Measurements.revision`.
    """

    loaded: bool
    revision: int
    dons: Mapping[int, DonView] = field(default_factory=lambda: _frozen({}))
    configs: Mapping[tuple[int, str], CapabilityConfig] = field(default_factory=lambda: _frozen({}))
    nodes: Mapping[str, NodeView] = field(default_factory=lambda: _frozen({}))
    # capability id -> ids of the DONs listing it, ascending (dons[0] is the lowest id).
    hosting: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: _frozen({}))
    ignored_keys: tuple[str, ...] = ()

    @classmethod
    def unloaded(cls) -> RegistryView:
        return cls(loaded=False, revision=0)

    def don_by_name(self, name: str) -> DonView | None:
        for don in self.dons.values():
            if don.name == name:
                return don
        return None

    def knows_capability(self, capability_id: str) -> bool:
        """Listed by some DON, or configured on some DON (even one that does not list it)."""
        return capability_id in self.hosting or any(cap == capability_id for _, cap in self.configs)


# --- Enclaves unwrapping (mapstructure semantics) ---------------------------------------------


class _UnwrapError(Exception):
    pass


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "bool",
        int: "number",
        float: "number",
        str: "string",
        list: "list",
        dict: "map",
    }.get(type(value), type(value).__name__)


def _field(obj: dict[str, Any], name: str, where: str) -> Any:
    """mapstructure's lookup: the exact key, else the one key equal ignoring case.

    "Ignoring case" is Go's strings.EqualFold: simple case folding, so `trustedValue` ending in
    U+017F LONG S matches `trustedValues` and U+212A KELVIN SIGN matches `k`. The Go JSON
    decoder's folding gives exactly that for our ASCII field names. mapstructure picks among
    several case-variants in Go map order (random); two variants would make honest nodes
    disagree, so that is an error here instead.
    """
    if name in obj:
        return obj[name]
    folded = go_fold(name)
    matches = sorted(k for k in obj if go_fold(k) == folded)
    if len(matches) > 1:
        raise _UnwrapError(f"{where}: keys {matches} differ only in case")
    return obj[matches[0]] if matches else None


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _UnwrapError(f"{where}: expected a list, got {_kind(value)}")
    return value


def unwrap_enclaves(config: object) -> EnclaveConfig:
    """`{Enclaves: [{trustedValues: [<base64 bytes>...], caRootsPEM: str}]}` -> EnclaveConfig.

    Trusted values are bytes (a values.Map bytes value; base64 std in our JSON) whose content is
    the JSON PCR object; they are not parsed here. Raises _UnwrapError with the path at fault.
    """
    if not isinstance(config, dict):
        raise _UnwrapError(f"config: expected a map, got {_kind(config)}")
    enclaves = _list(_field(config, "Enclaves", "config"), "Enclaves")
    values: list[bytes] = []
    ca_pem = ""
    for i, enclave in enumerate(enclaves):
        where = f"Enclaves[{i}]"
        if not isinstance(enclave, dict):
            raise _UnwrapError(f"{where}: expected a map, got {_kind(enclave)}")
        trusted = _list(_field(enclave, "trustedValues", where), f"{where}.trustedValues")
        for j, item in enumerate(trusted):
            item_where = f"{where}.trustedValues[{j}]"
            if not isinstance(item, str):
                raise _UnwrapError(f"{item_where}: expected base64 bytes, got {_kind(item)}")
            try:
                values.append(base64.b64decode(item, validate=True))
            except (binascii.Error, ValueError) as exc:
                raise _UnwrapError(f"{item_where}: invalid base64: {exc}") from exc
        pem = _field(enclave, "caRootsPEM", where)
        if pem is not None and not isinstance(pem, str):
            raise _UnwrapError(f"{where}.caRootsPEM: expected a string, got {_kind(pem)}")
        if pem and not ca_pem:
            ca_pem = pem
    return EnclaveConfig(
        trusted_values=tuple(values), ca_roots_pem=ca_pem, enclave_count=len(enclaves)
    )


def _config(don_id: int, capability_id: str, raw: bytes) -> CapabilityConfig:
    decoded = msgspec.json.decode(raw)  # the caller turns a DecodeError into a problem
    if decoded is None:
        return CapabilityConfig(
            don_id=don_id,
            capability_id=capability_id,
            raw=raw,
            has_default=False,
            enclaves=None,
            unwrap_error="",
        )
    try:
        enclaves: EnclaveConfig | None = unwrap_enclaves(decoded)
        error = ""
    except _UnwrapError as exc:
        enclaves, error = None, str(exc)
    return CapabilityConfig(
        don_id=don_id,
        capability_id=capability_id,
        raw=raw,
        has_default=True,
        enclaves=enclaves,
        unwrap_error=error,
    )


# --- building ---------------------------------------------------------------------------------


def _don_problems(record: DonRecord, key_id: int) -> list[str]:
    where = f"DON {record.id}"
    problems: list[str] = []
    if record.id != key_id:
        problems.append(f"key {don_key(key_id)!r} holds DON id {record.id}")
    if not record.name:
        problems.append(f"{where}: name is empty")
    if record.f < 0:
        problems.append(f"{where}: f must be >= 0, got {record.f}")
    if record.config_version < 0:
        problems.append(f"{where}: config_version must be >= 0, got {record.config_version}")
    if any(not m for m in record.members):
        problems.append(f"{where}: a member address is empty")
    if len(set(record.members)) != len(record.members):
        problems.append(f"{where}: member addresses must be unique")
    # Byzantine fault tolerance needs N >= 3F+1 (the CapabilitiesRegistry contract's own rule).
    if record.f >= 0 and len(record.members) < 3 * record.f + 1:
        problems.append(
            f"{where}: {len(record.members)} members cannot tolerate f={record.f} "
            f"(need at least {3 * record.f + 1})"
        )
    problems.extend(_peer_id_problems(record, where))
    if any(not c for c in record.capabilities):
        problems.append(f"{where}: a capability id is empty")
    if len(set(record.capabilities)) != len(record.capabilities):
        problems.append(f"{where}: capability ids must be unique")
    return problems


def parse_peer_id(text: str) -> bytes | None:
    """A peer id's 32 bytes from its 64 hex digits (either case); None if it is not that."""
    if len(text) != 2 * PEER_ID_BYTES or not text.isascii():
        return None
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def _peer_id_problems(record: DonRecord, where: str) -> list[str]:
    if not record.peer_ids:
        return []
    problems: list[str] = []
    if len(record.peer_ids) != len(record.members):
        problems.append(
            f"{where}: {len(record.peer_ids)} peer ids for {len(record.members)} members"
            " (one per member, in member order)"
        )
    parsed = [parse_peer_id(p) for p in record.peer_ids]
    for i, peer_id in enumerate(parsed):
        if peer_id is None:
            problems.append(
                f"{where}: peer_ids[{i}] is not an Ed25519 public key"
                f" ({2 * PEER_ID_BYTES} hex digits)"
            )
    valid = [p for p in parsed if p is not None]
    if len(set(valid)) != len(valid):
        problems.append(f"{where}: peer ids must be unique")
    return problems


def build_view(entries: Mapping[str, bytes], *, revision: int) -> RegistryView:
    """The view of a whole bucket (key -> value), or RegistryDataError naming every problem."""
    problems: list[str] = []
    dons: dict[int, DonView] = {}
    configs: dict[tuple[int, str], CapabilityConfig] = {}
    nodes: dict[str, NodeView] = {}
    ignored: list[str] = []
    for key in sorted(entries):
        raw = entries[key]
        try:
            parsed = parse_key(key)
        except RegistryDataError as exc:
            problems.extend(exc.problems)
            continue
        try:
            if parsed is None:
                ignored.append(key)
            elif isinstance(parsed, DonKey):
                record = msgspec.json.decode(raw, type=DonRecord)
                found = _don_problems(record, parsed.don_id)
                if found:
                    problems.extend(found)
                    continue
                dons[record.id] = DonView(
                    id=record.id,
                    name=record.name,
                    f=record.f,
                    members=tuple(record.members),
                    config_version=record.config_version,
                    capabilities=tuple(record.capabilities),
                    accepts_workflows=record.accepts_workflows,
                    is_public=record.is_public,
                    peer_ids=tuple(bytes.fromhex(p) for p in record.peer_ids),
                    require_bft_quorum=record.require_bft_quorum,
                )
            elif isinstance(parsed, CapabilityKey):
                configs[(parsed.don_id, parsed.capability_id)] = _config(
                    parsed.don_id, parsed.capability_id, raw
                )
            else:
                node = msgspec.json.decode(raw, type=NodeRecord)
                nodes[parsed.address] = NodeView(
                    address=parsed.address, workflow_don_id=node.workflow_don_id
                )
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            problems.append(f"key {key!r}: {exc}")
    names: dict[str, int] = {}
    for don in sorted(dons.values(), key=lambda d: d.id):
        if don.name in names:
            problems.append(f"DONs {names[don.name]} and {don.id} share the name {don.name!r}")
        names.setdefault(don.name, don.id)
    if problems:
        raise RegistryDataError(problems)
    hosting: dict[str, list[int]] = {}
    for don_id in sorted(dons):
        for cap in dons[don_id].capabilities:
            hosting.setdefault(cap, []).append(don_id)
    return RegistryView(
        loaded=True,
        revision=revision,
        dons=_frozen(dict(sorted(dons.items()))),
        configs=_frozen(configs),
        nodes=_frozen(nodes),
        hosting=_frozen({cap: tuple(ids) for cap, ids in hosting.items()}),
        ignored_keys=tuple(ignored),
    )
