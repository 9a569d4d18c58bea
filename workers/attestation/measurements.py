"""Trusted PCR sets and their O(1) index (PROTOCOL 3.3 "any set matches", 3.4 parsing)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from schemas.gohex import go_hex_decode
from schemas.gojson import GoStruct, GoUnmarshalTypeError, StringField, json_kind
from schemas.gojson_scan import JSONObject, JSONValue, parse


@dataclass(frozen=True, slots=True)
class PcrSet:
    """PCR0/1/2 of one trusted enclave image; only these three are compared (PROTOCOL 3.4)."""

    pcr0: bytes
    pcr1: bytes
    pcr2: bytes

    @property
    def key(self) -> tuple[bytes, bytes, bytes]:
        return (self.pcr0, self.pcr1, self.pcr2)

    def to_json(self) -> bytes:
        return json.dumps(
            {"pcr0": self.pcr0.hex(), "pcr1": self.pcr1.hex(), "pcr2": self.pcr2.hex()},
            separators=(",", ":"),
        ).encode()


# chainlink-common teeattestation/nitro `PCRs` (three `HexBytes` fields, tags pcr0/pcr1/pcr2).
# Only its key lookup is used: the exact tag, else Go's case folding (PCR0, Pcr0 ...). The values
# are not strings to Go but HexBytes, decoded by `_hex_bytes`.
_PCRS = GoStruct(
    "PCRs", "nitro.PCRs", (StringField("pcr0"), StringField("pcr1"), StringField("pcr2"))
)


def _hex_bytes(value: JSONValue) -> bytes:
    """`HexBytes.UnmarshalJSON`: a JSON string of Go hex, with upstream's error texts.

    Go calls it for `null` too: unmarshalling null into its string leaves "", which decodes to
    empty bytes, so a later null empties an earlier value of the same key.
    """
    if value is None:
        return b""
    if not isinstance(value, str):
        inner = GoUnmarshalTypeError(json_kind(value), "string").message
        raise ValueError(f"HexBytes: cannot unmarshal JSON into string: {inner}")
    try:
        return go_hex_decode(value)
    except ValueError as exc:
        raise ValueError(f"HexBytes: failed to decode hex string '{value}': {exc}") from exc


def _unmarshal_pcrs(raw: bytes) -> dict[str, bytes]:
    """`json.Unmarshal(raw, &nitro.PCRs{})`; raises ValueError with Go's error text."""
    tree = parse(raw)  # Go validates the whole text first: a syntax error wins
    fields = {f.name: b"" for f in _PCRS.fields}  # a missing key leaves Go's HexBytes nil
    if tree is None:
        return fields  # a top-level null is a zero PCRs, not an error
    if not isinstance(tree, JSONObject):
        raise GoUnmarshalTypeError(json_kind(tree), _PCRS.type_name)
    # Every occurrence of a matching key is decoded again, in order, so the last one wins; an
    # Unmarshaler's error ends decoding at once. Unknown keys are skipped whatever they hold.
    for key, value, _, _ in tree.members:
        f = _PCRS.lookup(key)
        if f is not None:
            fields[f.name] = _hex_bytes(value)
    return fields


def parse_trusted_value(raw: bytes) -> PcrSet:
    """One registry trusted value (JSON PCR object bytes) -> PcrSet; ValueError with upstream text.

    Decoded as chainlink-common's `json.Unmarshal` into `nitro.PCRs` (PROTOCOL 3.4, 8.1).
    """
    try:
        fields = _unmarshal_pcrs(raw)
    except ValueError as exc:  # GoJSONError is a ValueError
        raise ValueError(f"failed to unmarshal trusted PCRs: {exc}") from exc
    return PcrSet(pcr0=fields["pcr0"], pcr1=fields["pcr1"], pcr2=fields["pcr2"])


class MeasurementIndex:
    """All trusted sets keyed by their (PCR0, PCR1, PCR2) triple: matching is one dict lookup."""

    def __init__(self, sets: Iterable[PcrSet], problems: Iterable[str] = ()) -> None:
        self._by_key: dict[tuple[bytes, bytes, bytes], PcrSet] = {}
        self._order: list[PcrSet] = []
        for pcr_set in sets:
            self._by_key.setdefault(pcr_set.key, pcr_set)
            self._order.append(pcr_set)
        self.problems = tuple(problems)

    @classmethod
    def from_sets(cls, sets: Iterable[PcrSet]) -> MeasurementIndex:
        return cls(sets)

    @classmethod
    def from_json_values(cls, values: Iterable[bytes]) -> MeasurementIndex:
        """Registry trustedValues; a malformed one is kept as a problem, like a failing set."""
        sets: list[PcrSet] = []
        problems: list[str] = []
        for raw in values:
            try:
                sets.append(parse_trusted_value(raw))
            except ValueError as exc:
                problems.append(str(exc))
        return cls(sets, problems)

    def __len__(self) -> int:
        return len(self._order)

    def match(self, pcrs: dict[int, bytes]) -> PcrSet | None:
        return self._by_key.get((pcrs.get(0, b""), pcrs.get(1, b""), pcrs.get(2, b"")))

    def explain(self, pcrs: dict[int, bytes], limit: int = 5) -> str:
        """Why nothing matched, in upstream's per-set words (first few sets only)."""
        lines = list(self.problems[:limit])
        for pcr_set in self._order[:limit]:
            for i, want in enumerate(pcr_set.key):
                if pcrs.get(i, b"") != want:
                    lines.append(f"PCR{i} mismatch: expected {want.hex()}")
                    break
        if len(self._order) + len(self.problems) > limit:
            lines.append(f"... {len(self._order) + len(self.problems)} sets in all")
        return "\n".join(lines) or "no trusted measurement sets"
