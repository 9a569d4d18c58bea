"""Bus messages evolve with defaults: old and new actors of the current protocol interoperate."""

from __future__ import annotations

import msgspec
import pytest

from schemas import bus


class _OldDispatchRequest(msgspec.Struct, frozen=True, kw_only=True, tag="dispatch"):
    """DispatchRequest as an actor built before the current protocol knows it."""

    request_id: str
    method: str
    params: msgspec.Raw
    budget_ms: int = 0


def test_a_dispatch_request_from_an_older_ingress_is_served_as_n1() -> None:
    """No `protocol` field: the dispatcher reads n1 (vault errors stay -32603)."""
    old = msgspec.json.encode(
        _OldDispatchRequest(request_id="r", method="m", params=msgspec.Raw(b"{}"))
    )
    assert bus.DISPATCH_REQUEST_DECODER.decode(old).protocol == "n1"


def test_an_older_dispatcher_reads_a_current_dispatch_request_ignoring_the_protocol() -> None:
    """The new field is unknown to an old decoder, which ignores it."""
    new = bus.ENCODER.encode(
        bus.DispatchRequest(
            request_id="r", method="m", params=msgspec.Raw(b"{}"), protocol="current"
        )
    )
    decoded = msgspec.json.decode(new, type=_OldDispatchRequest)
    assert decoded.request_id == "r"


def test_a_trust_reply_round_trips_its_keys_as_bytes() -> None:
    """Trust carries raw 32-byte keys (base64 in JSON) and decodes back to the same bytes."""
    reply = bus.Trust(
        revision=3,
        relay_f=1,
        relay_signers=[b"\x01" * 32, b"\x02" * 32],
        own_peer_id=b"\x01" * 32,
        workflow_f=1,
        workflow_members=[b"\x03" * 32],
        require_bft_quorum=True,
    )
    assert bus.REGISTRY_REPLY_DECODER.decode(bus.ENCODER.encode(reply)) == reply


def test_a_trust_request_is_a_decode_error_for_an_older_registry_union() -> None:
    """An older registry actor cannot decode `trust.get` and answers an error: fail closed."""
    old_union = bus.MeasurementsRequest | bus.CapabilityRequest | bus.LocalNodeRequest
    data = bus.ENCODER.encode(bus.TrustRequest(don="relay-don"))
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(data, type=old_union)
