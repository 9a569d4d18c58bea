"""Registry lookups over one view: answers and every upstream error text (PROTOCOL 2.5, 3.3)."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from schemas import bus
from workers.registry import actor as registry
from workers.registry.actor import CONFIDENTIAL_WORKFLOWS as CW
from workers.registry.view import (
    DonRecord,
    NodeRecord,
    RegistryView,
    build_view,
    capability_key,
    don_key,
    node_key,
)

PCR_A = b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'
PCR_B = b'{"pcr0":"01","pcr1":"02","pcr2":"03"}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def don(don_id: int, *caps: str, name: str = "", version: int = 1) -> tuple[str, bytes]:
    record = DonRecord(
        id=don_id,
        name=name or f"don-{don_id}",
        f=0,
        members=[f"n{don_id}"],
        config_version=version,
        capabilities=list(caps),
    )
    return don_key(don_id), msgspec.json.encode(record)


def config(don_id: int, cap: str, value: Any) -> tuple[str, bytes]:
    return capability_key(don_id, cap), msgspec.json.encode(value)


def enclaves(*values: bytes, pem: str = "") -> dict[str, Any]:
    return {"Enclaves": [{"trustedValues": [b64(v) for v in values], "caRootsPEM": pem}]}


def view(*entries: tuple[str, bytes], revision: int = 9) -> RegistryView:
    return build_view(dict(entries), revision=revision)


def detail(reply: object) -> str:
    assert isinstance(reply, bus.StageError), reply
    assert reply.code == -32603
    assert reply.message == "internal error"
    return reply.detail


def test_measurements_are_the_trusted_values_of_the_hosting_dons_config() -> None:
    """The reply carries the raw trusted bytes in order, the CA PEM and the view's revision."""
    v = view(don(2, CW), config(2, CW, enclaves(PCR_A, PCR_B, pem="PEM")), revision=41)
    reply = registry.measurements(v)
    assert reply == bus.Measurements(revision=41, trusted_values=[PCR_A, PCR_B], ca_roots_pem="PEM")


def test_measurements_concatenate_every_enclave_and_take_the_first_non_empty_pem() -> None:
    """Values of all enclaves are joined in order; an empty PEM does not win over a later one."""
    cfg = {
        "Enclaves": [
            {"trustedValues": [b64(PCR_A)], "caRootsPEM": ""},
            {"trustedValues": [b64(PCR_B)], "caRootsPEM": "SECOND"},
            {"trustedValues": [], "caRootsPEM": "THIRD"},
        ]
    }
    reply = registry.measurements(view(don(2, CW), config(2, CW, cfg)))
    assert isinstance(reply, bus.Measurements)
    assert reply.trusted_values == [PCR_A, PCR_B]
    assert reply.ca_roots_pem == "SECOND"


def test_config_keys_match_case_insensitively_as_mapstructure_does() -> None:
    """`enclaves`, `TrustedValues` and `CAROOTSPEM` are the same fields as the canonical names."""
    cfg = {"enclaves": [{"TrustedValues": [b64(PCR_A)], "CAROOTSPEM": "X", "enclaveURL": "u"}]}
    reply = registry.measurements(view(don(2, CW), config(2, CW, cfg)))
    assert reply == bus.Measurements(revision=9, trusted_values=[PCR_A], ca_roots_pem="X")


def test_the_first_don_is_the_lowest_id_hosting_the_capability() -> None:
    """With two hosting DONs the lowest id wins, whatever order the keys come in."""
    v = view(
        don(7, CW),
        config(7, CW, enclaves(PCR_B)),
        don(3, CW),
        config(3, CW, enclaves(PCR_A)),
    )
    reply = registry.measurements(v)
    assert isinstance(reply, bus.Measurements)
    assert reply.trusted_values == [PCR_A]


def test_a_never_loaded_registry_fails_closed() -> None:
    """Before the bucket was ever read, the lookup fails with the not-loaded reason."""
    assert detail(registry.measurements(RegistryView.unloaded())) == (
        f"failed to find DON for {CW}: {registry.NOT_LOADED}"
    )


def test_an_empty_registry_reports_no_dons() -> None:
    """A loaded but empty bucket gives upstream's empty-registry error."""
    assert detail(registry.measurements(view())) == (
        f"failed to find DON for {CW}: empty local registry: no DONs registered"
    )


def test_an_unknown_capability_has_no_don() -> None:
    """A capability no DON lists and nobody configures is upstream's DONsForCapability error."""
    assert detail(registry.measurements(view(don(1)))) == (
        f"failed to find DON for {CW}: could not find DON for capability {CW}"
    )


def test_a_configured_but_unlisted_capability_has_no_hosting_don() -> None:
    """A config whose DON does not list the capability yields an empty DON list."""
    v = view(don(1), config(1, CW, enclaves(PCR_A)))
    assert detail(registry.measurements(v)) == f"no DON found hosting {CW}"


def test_a_listed_capability_without_config_fails_to_get_its_config() -> None:
    """The first hosting DON must hold a config key for the capability."""
    assert detail(registry.measurements(view(don(2, CW)))) == (
        f"failed to get config for {CW}: could not find capability configuration "
        f"for capability {CW} and donID 2"
    )


def test_a_null_config_has_no_default_config() -> None:
    """A config value of JSON null is a missing DefaultConfig."""
    v = view(don(2, CW), config(2, CW, None))
    assert detail(registry.measurements(v)) == f"no default config for {CW}"


@pytest.mark.parametrize(
    ("cfg", "reason"),
    [
        ([1], "config: expected a map, got list"),
        ({"Enclaves": {"a": 1}}, "Enclaves: expected a list, got map"),
        ({"Enclaves": ["x"]}, "Enclaves[0]: expected a map, got string"),
        (
            {"Enclaves": [{"trustedValues": "abc"}]},
            "Enclaves[0].trustedValues: expected a list, got string",
        ),
        (
            {"Enclaves": [{"trustedValues": [{"pcr0": "aa"}]}]},
            "Enclaves[0].trustedValues[0]: expected base64 bytes, got map",
        ),
        (
            {"Enclaves": [{"trustedValues": [b64(PCR_A), 5]}]},
            "Enclaves[0].trustedValues[1]: expected base64 bytes, got number",
        ),
        (
            {"Enclaves": [{"trustedValues": [b64(PCR_A)], "caRootsPEM": 3}]},
            "Enclaves[0].caRootsPEM: expected a string, got number",
        ),
        (
            {"enclaves": [], "ENCLAVES": []},
            "config: keys ['ENCLAVES', 'enclaves'] differ only in case",
        ),
    ],
)
def test_a_malformed_enclave_config_fails_to_unwrap(cfg: Any, reason: str) -> None:
    """Each structural mistake is reported with the path at fault."""
    v = view(don(2, CW), config(2, CW, cfg))
    assert detail(registry.measurements(v)) == f"failed to unwrap enclave config: {reason}"


def test_a_trusted_value_that_is_not_base64_fails_to_unwrap() -> None:
    """Trusted values are bytes: a string that is not standard base64 is rejected."""
    v = view(don(2, CW), config(2, CW, {"Enclaves": [{"trustedValues": ["not base64!"]}]}))
    assert detail(registry.measurements(v)).startswith(
        "failed to unwrap enclave config: Enclaves[0].trustedValues[0]: invalid base64"
    )


@pytest.mark.parametrize(
    "cfg", [{}, {"Enclaves": None}, {"Enclaves": []}, {"Enclaves": [{"trustedValues": None}]}]
)
def test_a_config_without_trusted_values_has_no_measurements(cfg: Any) -> None:
    """Absent, null or empty lists all leave no measurement to match against."""
    v = view(don(2, CW), config(2, CW, cfg))
    assert detail(registry.measurements(v)) == (
        "no trusted measurements found in capabilities registry"
    )


def test_the_requested_capability_id_names_the_errors() -> None:
    """A request for another capability id looks that id up and names it."""
    v = view(don(2, CW), config(2, CW, enclaves(PCR_A)))
    reply = registry.measurements(v, "other@2.0.0")
    assert detail(reply) == (
        "failed to find DON for other@2.0.0: could not find DON for capability other@2.0.0"
    )


def test_capability_lookup_names_the_lowest_hosting_don() -> None:
    """GetExecutable answers with the lowest DON id listing the capability."""
    v = view(don(5, "vault@1.0.0"), don(4, "vault@1.0.0"))
    assert registry.capability(v, "vault@1.0.0") == bus.CapabilityInfo(
        capability_id="vault@1.0.0", don_id=4
    )


def test_an_unlisted_capability_is_not_found() -> None:
    """A capability no DON lists is `capability not found: <id>`."""
    assert detail(registry.capability(view(don(1)), "echo@1.0.0")) == (
        "capability not found: echo@1.0.0"
    )


def test_capability_lookup_fails_closed_before_loading() -> None:
    """An unloaded view does not know any capability."""
    assert detail(registry.capability(RegistryView.unloaded(), "vault@1.0.0")) == (
        f"capability not found: vault@1.0.0: {registry.NOT_LOADED}"
    )


def local(workflow_don: int) -> tuple[str, bytes]:
    return node_key("node-0"), msgspec.json.encode(NodeRecord(workflow_don_id=workflow_don))


def test_local_node_gives_the_workflow_don_and_its_config_version() -> None:
    """The node's workflow DON id comes with that DON's config version."""
    v = view(don(2, version=6), local(2))
    assert registry.local_node(v, "node-0") == bus.LocalNode(
        workflow_don_id=2, workflow_don_config_version=6
    )


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ((), "empty local registry: no DONs registered"),
        ((don(2),), "could not find node node-0"),
        ((don(1), local(2)), "node node-0: could not find workflow don 2"),
    ],
)
def test_local_node_failures_are_wrapped(
    entries: tuple[tuple[str, bytes], ...], reason: str
) -> None:
    """Every LocalNode failure reads `failed to get local node: <reason>`."""
    assert detail(registry.local_node(view(*entries), "node-0")) == (
        f"failed to get local node: {reason}"
    )


def test_local_node_fails_closed_before_loading() -> None:
    """An unloaded view has no local node."""
    assert detail(registry.local_node(RegistryView.unloaded(), "node-0")) == (
        f"failed to get local node: {registry.NOT_LOADED}"
    )


def test_don_lookup_by_name_gives_id_f_and_members() -> None:
    """The gateway's DON query answers with the record's id, F and members."""
    v = view(don(3, name="relay-don"))
    assert registry.don(v, "relay-don") == bus.DonInfo(id=3, name="relay-don", f=0, members=["n3"])


def test_an_unknown_don_name_is_an_error() -> None:
    """Asking for a DON name nobody has fails with that name."""
    assert detail(registry.don(view(don(3)), "relay-don")) == (
        "failed to get DON relay-don: could not find DON named 'relay-don'"
    )


def test_don_lookup_fails_closed_before_loading() -> None:
    """An unloaded view has no DONs."""
    assert detail(registry.don(RegistryView.unloaded(), "relay-don")) == (
        f"failed to get DON relay-don: {registry.NOT_LOADED}"
    )


def test_handle_routes_each_request_type_to_its_lookup() -> None:
    """One view answers all four request types, LocalNode for the given address."""
    v = view(don(2, CW, version=4), config(2, CW, enclaves(PCR_A)), local(2))
    assert isinstance(registry.handle(v, bus.MeasurementsRequest(), "node-0"), bus.Measurements)
    assert registry.handle(v, bus.CapabilityRequest(capability_id=CW), "x") == bus.CapabilityInfo(
        capability_id=CW, don_id=2
    )
    assert registry.handle(v, bus.LocalNodeRequest(), "node-0") == bus.LocalNode(
        workflow_don_id=2, workflow_don_config_version=4
    )
    assert isinstance(registry.handle(v, bus.LocalNodeRequest(), "node-9"), bus.StageError)
    assert isinstance(registry.handle(v, bus.DonRequest(name="don-2"), "x"), bus.DonInfo)


async def test_the_actor_answers_malformed_bytes_with_a_typed_error() -> None:
    """Bytes that are no registry request get -32603 with the decoder's reason, not an exception."""
    actor = registry.RegistryActor(registry.RegistryCache(), node="node-0")
    assert detail(await actor.answer("don", b"\xff{")).startswith(
        "malformed registry request on verb don: "
    )


async def test_the_actor_refuses_a_request_sent_to_another_verb() -> None:
    """A DonRequest on the measurements subject is refused, not answered as a DON query."""
    actor = registry.RegistryActor(registry.RegistryCache(), node="node-0")
    payload = bus.ENCODER.encode(bus.DonRequest(name="x"))
    assert detail(await actor.answer("measurements", payload)) == (
        "registry verb measurements cannot answer DonRequest"
    )


async def test_the_actor_fails_closed_before_its_cache_has_loaded() -> None:
    """A cache that never read the bucket makes the actor answer the not-loaded error."""
    actor = registry.RegistryActor(registry.RegistryCache(), node="node-0")
    reply = await actor.answer("measurements", bus.ENCODER.encode(bus.MeasurementsRequest()))
    assert detail(reply) == f"failed to find DON for {CW}: {registry.NOT_LOADED}"
