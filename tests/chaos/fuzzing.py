"""Hypothesis settings and strategies shared by the fuzz tests, and the envelope oracle.

The oracle says which answer PROTOCOL 2.5 gives to a JSON envelope, computed from the JSON value
with Python's own parser and Go's `encoding/json` rules (ASCII keys matched case-insensitively,
the last duplicate wins, `null` leaves a field alone, a value of the wrong type is an error),
independently of the code under test.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from schemas import rpc
from workers.attestation.testchain import TestChain

EXAMPLES = int(os.environ.get("RELAY_FUZZ_EXAMPLES", "0") or "0")
"""Examples per property for a longer campaign; 0 keeps each test's own CI bound."""


def bounded(ci_examples: int) -> settings:
    """Derandomized (the same inputs on every CI run), no database, no per-example deadline
    (the machine is shared), at most `ci_examples` unless a campaign asks for more."""
    return settings(
        max_examples=EXAMPLES or ci_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


# --- JSON values ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
not_strings = json_values.filter(lambda v: v is not None and not isinstance(v, str))

ENVELOPE_KEYS = ("jsonrpc", "id", "method", "params", "auth")
SECRETS_FIELDS = (
    "workflow_id",
    "owner",
    "execution_id",
    "org_id",
    "enclave_public_key",
    "attestation",
)
CAPABILITY_FIELDS = (
    "workflow_id",
    "owner",
    "execution_id",
    "org_id",
    "reference_id",
    "capability_id",
    "payload",
    "attestation",
)


def spellings(name: str) -> st.SearchStrategy[str]:
    """`name` as Go would still match it: exact, upper, or mixed case (ASCII only)."""
    return st.sampled_from([name, name.upper(), name.capitalize(), name.swapcase()])


Pairs = list[tuple[str, Any]]


def dump_pairs(pairs: Pairs) -> str:
    """A JSON object written from (key, value) pairs, so duplicates and case variants survive."""
    return "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"


@dataclass(frozen=True)
class Expected:
    """The answer the spec gives: its code, and the exact wire message when the oracle knows it
    (Go's decoder texts are checked by the unit tests, not here); id and method echoed."""

    code: int | None  # None: a success
    message: str | None
    request_id: str
    method: str


def go_string_fields(pairs: Pairs, names: tuple[str, ...]) -> tuple[dict[str, str], bool]:
    """Go's decoding of `pairs` into string fields `names`: the values and whether any key
    had a value of another type (an UnmarshalTypeError)."""
    values = dict.fromkeys(names, "")
    type_error = False
    for key, value in pairs:
        name = key.lower() if key.isascii() else None
        if name not in values:
            continue
        if value is None:
            continue  # null leaves a Go string alone
        if isinstance(value, str):
            values[name] = value
        else:
            type_error = True
    return values, type_error


def _params_type_error(method: str, params: Any) -> bool:
    """Whether Go's Unmarshal of `params` into the method's struct reports a type error."""
    if not isinstance(params, list | dict):
        return True  # a scalar or string into a struct
    if isinstance(params, list):
        return True
    names = SECRETS_FIELDS if method == rpc.MethodSecretsGet else CAPABILITY_FIELDS
    _, bad = go_string_fields(list(params.items()), names)
    if bad:
        return True
    if method != rpc.MethodSecretsGet:
        return False
    for key, value in params.items():
        if key.lower() != "secrets" or value is None:
            continue
        if not isinstance(value, list):
            return True
        for item in value:
            if item is None:
                continue
            if not isinstance(item, dict):
                return True
            if go_string_fields(list(item.items()), ("key", "namespace"))[1]:
                return True
    return False


def expected_answer(pairs: Pairs, params_value: Any = None) -> Expected:
    """PROTOCOL 2.5's answer to the envelope `pairs` (keys may repeat, last wins); the params
    value decoded by Python is passed separately as its `pairs` entry may hold raw text."""
    fields, type_error = go_string_fields(pairs, ("jsonrpc", "id", "method", "auth"))
    if type_error:
        return Expected(rpc.ErrParse, None, "", "")
    request_id, method = fields["id"], fields["method"]
    params: Any = None
    present = False
    for key, value in pairs:
        if key.lower() == "params":
            params, present = value, value is not None
    if method not in rpc.METHODS:
        return Expected(rpc.ErrMethodNotFound, f"unsupported method: {method}", request_id, method)
    if not present:
        return Expected(rpc.ErrInvalidParams, "missing params", request_id, method)
    if _params_type_error(method, params):
        return Expected(rpc.ErrInvalidParams, None, request_id, method)
    # Every params that decodes reaches the attestation check first: the fuzzer's documents
    # (absent, empty, not base64, or not one the node trusts) all fail it, -32603.
    return Expected(rpc.ErrInternal, rpc.INTERNAL_ERROR_MESSAGE, request_id, method)


NODE_CODES = frozenset({rpc.ErrParse, rpc.ErrMethodNotFound, rpc.ErrInvalidParams, rpc.ErrInternal})
"""Every code a node's ingress answers with (PROTOCOL 2.5's tables)."""


def check_response(raw: bytes, expected: Expected | None) -> dict[str, Any]:
    """`raw` is one well-formed node response in Go's key order; with `expected`, the spec's."""
    keys: list[str] = []

    def record(pairs: Pairs) -> dict[str, Any]:
        keys.extend(k for k, _ in pairs)
        return dict(pairs)

    body: dict[str, Any] = json.loads(raw, object_pairs_hook=record)
    error = body.get("error")
    assert list(body)[:3] == ["jsonrpc", "id", "method"], raw[:300]
    assert body["jsonrpc"] == "2.0", raw[:300]
    assert ("result" in body) != ("error" in body), raw[:300]
    if error is not None:
        assert list(error) == ["code", "message"], raw[:300]  # a node never sends `data`
        assert error["code"] in NODE_CODES, raw[:300]
        if error["code"] == rpc.ErrInternal:
            assert error["message"] == rpc.INTERNAL_ERROR_MESSAGE, raw[:300]
    if expected is not None:
        assert (body["id"], body["method"]) == (expected.request_id, expected.method), raw[:300]
        got = None if error is None else error["code"]
        assert got == expected.code, (raw[:300], expected)
        if expected.message is not None:
            assert error is not None
            assert error["message"] == expected.message, (raw[:300], expected)
    return body


# --- strategies ---------------------------------------------------------------------------------

CHAIN = TestChain()
VALID_DOCUMENT = CHAIN.document(user_data=b"\x01" * 32)
"""A signed document of a test chain, bound to nothing the fuzzer sends: the mutations start here."""

documents = st.one_of(
    st.binary(max_size=64),
    st.builds(  # a real, signed document with one byte changed
        lambda at, value: VALID_DOCUMENT[:at] + bytes([value]) + VALID_DOCUMENT[at + 1 :],
        st.integers(0, len(VALID_DOCUMENT) - 1),
        st.integers(0, 255),
    ).filter(lambda doc: doc != VALID_DOCUMENT),
    st.integers(1, len(VALID_DOCUMENT) - 1).map(lambda n: VALID_DOCUMENT[:n]),
    st.just(VALID_DOCUMENT),  # valid, but bound to other params: user_data does not match
)
attestations = st.one_of(
    st.just(""),
    st.text(max_size=30),
    documents.map(lambda doc: base64.b64encode(doc).decode()),
)


def mostly(common: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`common` favoured over `odd`: most fuzz inputs should get past the first check."""
    return st.one_of(*([common] * 9), odd)


def field_value(name: str) -> st.SearchStrategy[Any]:
    if name == "attestation":
        return mostly(attestations, st.one_of(not_strings, st.none()))
    if name == "secrets":
        secret = st.one_of(
            st.fixed_dictionaries({"key": st.text(max_size=8), "namespace": st.text(max_size=8)}),
            st.dictionaries(st.sampled_from(["key", "namespace", "KEY", "x"]), json_values),
            json_values,
        )
        return mostly(st.lists(secret, max_size=3), json_values)
    return mostly(st.text(max_size=20), json_values)


@st.composite
def params_objects(draw: st.DrawFn, method: str) -> dict[str, Any]:
    names = list(SECRETS_FIELDS if method == rpc.MethodSecretsGet else CAPABILITY_FIELDS)
    names += ["secrets", "unknown"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=len(names), unique=True))
    return {name: draw(field_value(name)) for name in chosen}


@st.composite
def envelopes(draw: st.DrawFn) -> Pairs:
    method = draw(
        mostly(st.sampled_from(rpc.METHODS), st.one_of(st.text(max_size=30), json_values))
    )
    params_method = method if isinstance(method, str) and method in rpc.METHODS else rpc.METHODS[0]
    values: dict[str, st.SearchStrategy[Any]] = {
        "jsonrpc": mostly(st.just("2.0"), st.one_of(st.text(max_size=5), json_values)),
        "id": mostly(st.text(max_size=30), json_values),
        "method": st.just(method),
        "params": mostly(params_objects(params_method), json_values),
        "auth": mostly(st.text(max_size=5), json_values),
    }
    keys = [
        k
        for k in ("jsonrpc", "id", "method", "params")
        if draw(mostly(st.just(True), st.just(False)))
    ]
    keys += draw(st.lists(st.sampled_from([*ENVELOPE_KEYS, "extra"]), max_size=3))
    pairs: Pairs = []
    for key in draw(st.permutations(keys)):
        if key == "extra":
            pairs.append((draw(st.text(max_size=6)), draw(json_values)))
        else:
            pairs.append((draw(spellings(key)), draw(values[key])))
    return pairs


@st.composite
def params_envelopes(draw: st.DrawFn) -> Pairs:
    """A well-formed envelope of one of the two methods whose params are fuzzed."""
    method = draw(st.sampled_from(rpc.METHODS))
    params = draw(st.one_of(params_objects(method), json_values))
    return [
        ("jsonrpc", "2.0"),
        ("id", draw(st.text(max_size=30))),
        ("method", method),
        ("params", params),
    ]
