"""Trusted PCR sets and their O(1) index (PROTOCOL 3.3 "any set matches", 3.4 parsing)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass


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


def _go_hex(value: object, name: str) -> bytes:
    if value is None:
        return b""  # a missing key leaves Go's HexBytes nil
    if not isinstance(value, str):
        raise ValueError(f"failed to unmarshal trusted PCRs: {name} is not a string")
    try:
        if len(value) % 2:
            raise ValueError("odd length hex string")
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ValueError(
            f"failed to unmarshal trusted PCRs: HexBytes: failed to decode hex string '{value}': {exc}"
        ) from exc


def parse_trusted_value(raw: bytes) -> PcrSet:
    """One registry trusted value (JSON PCR object bytes) -> PcrSet; ValueError with upstream text."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"failed to unmarshal trusted PCRs: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("failed to unmarshal trusted PCRs: not a JSON object")
    return PcrSet(
        pcr0=_go_hex(obj.get("pcr0"), "pcr0"),
        pcr1=_go_hex(obj.get("pcr1"), "pcr1"),
        pcr2=_go_hex(obj.get("pcr2"), "pcr2"),
    )


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
