"""The registry's KV key layout and the validation of a whole bucket into one view."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest

from workers.registry.view import (
    CapabilityKey,
    DonKey,
    DonRecord,
    EnclaveConfig,
    NodeKey,
    RegistryDataError,
    build_view,
    capability_key,
    don_key,
    node_key,
    parse_key,
)

KV_KEY_ALPHABET = set("-/_=.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def record(**overrides: object) -> bytes:
    fields: dict[str, object] = {"id": 1, "name": "d", "f": 1, "members": ["a", "b", "c", "d"]}
    fields.update(overrides)
    return msgspec.json.encode(fields)


@pytest.mark.parametrize("cap", ["confidential-workflows@1.0.0-alpha", "vault@1.0.0", "a_b", "ü"])
def test_capability_keys_stay_in_the_kv_alphabet_and_parse_back(cap: str) -> None:
    """Capability ids with `@`, `.` or non-ASCII become one valid key token and decode back."""
    key = capability_key(12, cap)
    assert set(key) <= KV_KEY_ALPHABET
    assert parse_key(key) == CapabilityKey(12, cap)


def test_don_and_node_keys_parse_back() -> None:
    """`dons.<id>` and `nodes.<address>` invert their builders."""
    assert parse_key(don_key(4294967295)) == DonKey(4294967295)
    assert parse_key(node_key("0xAb.c@d")) == NodeKey("0xAb.c@d")


def test_keys_outside_the_layout_are_ignored() -> None:
    """Another first token is left for later additions, not rejected."""
    assert parse_key("meta.schema") is None
    view = build_view({"meta.schema": b"whatever"}, revision=3)
    assert view.ignored_keys == ("meta.schema",)


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        ("dons.01", "is not a decimal number"),
        ("dons.x", "is not a decimal number"),
        ("dons.0", "outside 1..4294967295"),
        ("dons.4294967296", "outside 1..4294967295"),
        ("dons.1.extra", "does not have the shape dons.<don id>"),
        ("capabilities.1", "does not have the shape capabilities.<don id>.<capability>"),
        ("capabilities.1.a@b", "is not encode_token form"),
        ("nodes.a_zz", "is not encode_token form"),
    ],
)
def test_malformed_keys_under_the_layout_are_problems(key: str, fragment: str) -> None:
    """A key under a known prefix with the wrong shape makes the bucket invalid."""
    with pytest.raises(RegistryDataError) as exc:
        build_view({key: b"{}"}, revision=1)
    assert any(fragment in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (record(id=2), "key 'dons.1' holds DON id 2"),
        (record(name=""), "name is empty"),
        (record(f=-1), "f must be >= 0"),
        (record(f=2), "4 members cannot tolerate f=2 (need at least 7)"),
        (record(members=["a", "a", "b", "c"]), "member addresses must be unique"),
        (record(members=["a", "", "b", "c"]), "a member address is empty"),
        (record(capabilities=["x", "x"]), "capability ids must be unique"),
        (record(config_version=-1), "config_version must be >= 0"),
        (record(f="1"), "Expected `int`, got `str` - at `$.f`"),
        (b"{not json", "key 'dons.1': JSON is malformed"),
    ],
)
def test_invalid_don_records_are_problems(value: bytes, fragment: str) -> None:
    """Each DON record rule is enforced with a message naming the DON or key."""
    with pytest.raises(RegistryDataError) as exc:
        build_view({"dons.1": value}, revision=1)
    assert any(fragment in p for p in exc.value.problems), exc.value.problems


DEEP = b"[" * 2000 + b"]" * 2000


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("dons.1", b'{"id":1,"extra":%s}' % DEEP),
        ("capabilities.1.other", DEEP),
        ("nodes.n0", b'{"workflow_don_id":1,"extra":%s}' % DEEP),
    ],
)
def test_a_value_nested_too_deep_to_decode_is_a_problem_not_a_crash(key: str, value: bytes) -> None:
    """Two thousand levels: the decoder gives up (RecursionError); that is a problem naming the
    key, so the cache keeps its view and reports why (it used to retry forever, silently)."""
    with pytest.raises(RegistryDataError) as exc:
        build_view({key: value}, revision=1)
    assert any(p.startswith(f"key {key!r}: maximum recursion depth") for p in exc.value.problems)


def test_two_dons_may_not_share_a_name() -> None:
    """DON names identify DONs for the gateway, so they must be unique."""
    with pytest.raises(RegistryDataError, match="DONs 1 and 2 share the name 'd'"):
        build_view({"dons.1": record(), "dons.2": record(id=2)}, revision=1)


def test_every_problem_is_reported_at_once() -> None:
    """An operator sees all mistakes of a bucket in one pass, not one per attempt."""
    with pytest.raises(RegistryDataError) as exc:
        build_view(
            {"dons.1": record(f=5), "nodes.n": b"[]", "capabilities.1.x": b"{"},
            revision=1,
        )
    assert len(exc.value.problems) == 3


def test_unknown_fields_in_records_are_ignored() -> None:
    """A newer writer may add fields; an older reader still builds its view."""
    view = build_view({"dons.1": record(region="eu", future=[1])}, revision=5)
    assert view.dons[1].members == ("a", "b", "c", "d")
    assert view.revision == 5
    assert view.loaded


def test_dons_are_ordered_by_id_and_hosting_lists_ascend() -> None:
    """The view iterates DONs by id, and each capability's hosts are ascending."""
    entries = {
        "dons.10": record(id=10, name="ten", capabilities=["c"]),
        "dons.2": record(id=2, name="two", capabilities=["c", "b"]),
    }
    view = build_view(entries, revision=1)
    assert list(view.dons) == [2, 10]
    assert view.hosting["c"] == (2, 10)
    assert view.hosting["b"] == (2,)


def test_a_don_record_round_trips_through_its_json() -> None:
    """The record struct decodes what it encodes, defaults included."""
    rec = DonRecord(id=3, name="x", f=0, members=["m"])
    assert msgspec.json.decode(msgspec.json.encode(rec), type=DonRecord) == rec


# --- Enclaves unwrapping: mapstructure's key match is Go's strings.EqualFold ---------------------

PCR = b'{"pcr0":"aa","pcr1":"bb","pcr2":"cc"}'
PCR_B64 = base64.b64encode(PCR).decode()
LONG_S = "\u017f"  # LATIN SMALL LETTER LONG S: Go folds it onto s and S


def unwrapped(cfg: Any) -> tuple[EnclaveConfig | None, str]:
    view = build_view({capability_key(1, "cap"): msgspec.json.encode(cfg)}, revision=1)
    config = view.configs[(1, "cap")]
    return config.enclaves, config.unwrap_error


@pytest.mark.parametrize(
    "cfg",
    [
        {"Enclaves": [{"trustedValues": [PCR_B64], "caRootsPEM": "PEM"}]},
        {"ENCLAVES": [{"TRUSTEDVALUES": [PCR_B64], "carootspem": "PEM"}]},
        {"enclaves": [{"TrustedValues": [PCR_B64], "CaRootsPem": "PEM"}]},
    ],
)
def test_config_keys_of_any_ascii_case_still_unwrap(cfg: Any) -> None:
    """Canonical and ASCII case variants of Enclaves, trustedValues and caRootsPEM all match."""
    assert unwrapped(cfg) == (
        EnclaveConfig(trusted_values=(PCR,), ca_roots_pem="PEM", enclave_count=1),
        "",
    )


def test_a_long_s_in_a_config_key_matches_like_go_equal_fold() -> None:
    """Go folds U+017F onto s, so `Enclave\u017f` and `trustedValue\u017f` are the canonical keys."""
    cfg = {f"Enclave{LONG_S}": [{f"trustedValue{LONG_S}": [PCR_B64], "caRootsPEM": "PEM"}]}
    enclaves, problem = unwrapped(cfg)
    assert problem == ""
    assert enclaves == EnclaveConfig(trusted_values=(PCR,), ca_roots_pem="PEM", enclave_count=1)


def test_lookalikes_that_go_does_not_fold_leave_the_field_unset() -> None:
    """Cyrillic dze (U+0455) looks like s but is no Go fold of it, so the key is unknown."""
    enclaves, problem = unwrapped({"Enclaves": [{"trustedValue\u0455": [PCR_B64]}]})
    assert problem == ""
    assert enclaves == EnclaveConfig(trusted_values=(), ca_roots_pem="", enclave_count=1)


def test_an_exact_key_wins_over_a_long_s_variant() -> None:
    """mapstructure tries the exact name first and only then looks for a folded match."""
    other = base64.b64encode(b"{}").decode()
    cfg = {"Enclaves": [{"trustedValues": [PCR_B64], f"trustedValue{LONG_S}": [other]}]}
    enclaves, _ = unwrapped(cfg)
    assert enclaves is not None
    assert enclaves.trusted_values == (PCR,)


def test_two_folded_variants_including_a_long_s_one_are_ambiguous() -> None:
    """Without an exact key, two EqualFold matches would depend on Go map order: an error here."""
    cfg: Any = {"Enclaves": [{"TRUSTEDVALUES": [], f"trustedValue{LONG_S}": []}]}
    assert unwrapped(cfg) == (
        None,
        f"Enclaves[0]: keys ['TRUSTEDVALUES', 'trustedValue{LONG_S}'] differ only in case",
    )
