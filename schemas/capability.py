"""The capability bus protocol (cap.v1): how a relay node calls a capability DON over NATS.

One request/reply per call on `cap.v1.<capability>.<method>` (`schemas.subjects.capability`;
both tokens are `encode_token` of the id and method, e.g. `cap.v1.vault_401_2e0_2e0.vault_2esecrets_2eget`),
queue group `capability`. Bodies are JSON. The protobuf payloads travel as base64 bytes of a
serialised `google.protobuf.Any`, so a bridge to a real DON in any language can pass them on
untouched. The JSON Schema of both messages is exported to `schemas/jsonschema/` (see
`python -m schemas.capability`). Evolution: fields are only ever added, with defaults; a
breaking change is a new subject version (`cap.v2`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec


class CallMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Upstream's capabilities.RequestMetadata fields the relay fills in (PROTOCOL 4.1, 4.2)."""

    workflow_id: str = ""
    workflow_owner: str = ""
    workflow_execution_id: str = ""
    workflow_don_id: int = 0
    workflow_don_config_version: int = 0
    reference_id: str = ""
    org_id: str = ""


class CapabilityCall(msgspec.Struct, frozen=True, kw_only=True, tag="capability.call.v1"):
    """Execute `method` of `capability_id` with a protobuf Any payload."""

    capability_id: str
    method: str
    payload: bytes
    """Serialised google.protobuf.Any (type URL + value)."""
    metadata: CallMetadata
    config: bytes = b""
    """Serialised values.v1.Map config, empty when the relay passes none."""
    inputs: bytes = b""
    """Serialised values.v1.Map of old-style inputs (PROTOCOL 4.2 step 4), or empty."""


class CapabilityOutcome(msgspec.Struct, frozen=True, kw_only=True, tag="capability.outcome.v1"):
    """The capability's answer: an Any payload, or an error text (never both)."""

    payload: bytes = b""
    """Serialised google.protobuf.Any; empty when the capability returned nothing."""
    error: str = ""
    payload_present: bool = False
    """True when the capability returned an Any that serialises to nothing (an empty Any): Go
    still sets the response's payload then (`CgA=`), where no Any at all gives an empty one."""


ENCODER = msgspec.json.Encoder()
CALL_DECODER = msgspec.json.Decoder(CapabilityCall)
OUTCOME_DECODER = msgspec.json.Decoder(CapabilityOutcome)

SCHEMA_DIR = Path(__file__).resolve().parent / "jsonschema"


def json_schemas() -> dict[str, bytes]:
    """File name -> exported JSON Schema bytes (stable formatting, committed to the repo)."""
    out: dict[str, bytes] = {}
    for name, kind in (
        ("capability-call.v1.json", CapabilityCall),
        ("capability-outcome.v1.json", CapabilityOutcome),
    ):
        schema = msgspec.json.schema(kind)
        out[name] = (json.dumps(schema, indent=2, sort_keys=True) + "\n").encode()
    return out


def export(directory: Path = SCHEMA_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in json_schemas().items():
        (directory / name).write_bytes(content)


if __name__ == "__main__":
    export(Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR)
