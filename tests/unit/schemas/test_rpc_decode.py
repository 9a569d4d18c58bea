"""Decoding the envelope and both params structs exactly as Go's json.Unmarshal does."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from schemas import rpc
from schemas.gojson import GoJSONError, GoSyntaxError, GoUnmarshalTypeError, grow_capacity
from schemas.rpc import SecretIdentifier as Sid


def secrets(text: str) -> rpc.SecretsRequestParams:
    return rpc.decode_secrets_params(text.encode())


def test_keys_match_exactly_or_case_insensitively() -> None:
    """Go matches keys ignoring ASCII case: WORKFLOW_ID and Workflow_Id both fill workflow_id."""
    assert secrets('{"WORKFLOW_ID":"a"}').workflow_id == "a"
    assert secrets('{"Workflow_Id":"b","OWNER":"o"}') == rpc.SecretsRequestParams(
        workflow_id="b", owner="o"
    )
    assert secrets('{"SECRETS":[{"KEY":"k","NameSpace":"n"}]}').secrets == (
        Sid(key="k", namespace="n"),
    )


def test_kelvin_sign_and_long_s_fold_onto_k_and_s() -> None:
    """Unicode simple folding: U+212A (Kelvin) matches k and U+017F (long s) matches s."""
    params = secrets('{"secret\u017f":[{"\u212aey":"k","name\u017fpace":"n"}]}')
    assert params.secrets == (Sid(key="k", namespace="n"),)
    escaped = secrets('{"\\u212aey_unknown":"x","\\u0077orkflow_id":"w"}')
    assert escaped.workflow_id == "w"


def test_other_unicode_lookalikes_do_not_match() -> None:
    """Runes that only upper-case to ASCII (ligatures, dotless i) are not Go folds: ignored."""
    params = secrets('{"work\ufb02ow_id":"x","\u0131d":"y","workflow_\u0130d":"z"}')
    assert params == rpc.SecretsRequestParams()


def test_unknown_keys_are_ignored_whatever_their_values() -> None:
    """Keys outside the struct are skipped, even with nested or odd values."""
    text = '{"extra":{"a":[1,{"b":null}]},"workflow_id":"w","n":-1e9,"t":true}'
    assert secrets(text) == rpc.SecretsRequestParams(workflow_id="w")


def test_repeated_string_keys_follow_go() -> None:
    """A later string replaces; a later null or wrong-typed value leaves the earlier string."""
    assert secrets('{"owner":"a","owner":"b"}').owner == "b"
    assert secrets('{"owner":"a","OWNER":"c"}').owner == "c"
    assert secrets('{"owner":"a","owner":null}').owner == "a"
    with pytest.raises(GoUnmarshalTypeError):
        secrets('{"owner":"a","owner":1}')


def test_null_leaves_zero_values_and_nil_slices() -> None:
    """null is no-op for strings and a nil slice for secrets; the whole null is a zero struct."""
    params = secrets('{"workflow_id":null,"secrets":null}')
    assert params == rpc.SecretsRequestParams()
    assert params.secrets is None
    assert rpc.decode_secrets_params(b"null") == rpc.SecretsRequestParams()
    assert secrets('{"secrets":[{"key":"a"}],"secrets":null}').secrets is None


def test_absent_empty_and_present_secrets_stay_distinct() -> None:
    """Absent secrets decode to None, [] to an empty tuple, elements in order."""
    assert secrets("{}").secrets is None
    assert secrets('{"secrets":[]}').secrets == ()
    assert secrets('{"secrets":[{"key":"b"},{"key":"a","namespace":""}]}').secrets == (
        Sid(key="b"),
        Sid(key="a"),
    )


def test_repeated_arrays_decode_element_wise_into_the_existing_slice() -> None:
    """A later, shorter array keeps fields of earlier elements that it does not set."""
    text = '{"secrets":[{"key":"a","namespace":"x"},{"key":"b","namespace":"y"}],"secrets":[{"key":"c"}]}'
    assert secrets(text).secrets == (Sid(key="c", namespace="x"),)


def test_stale_elements_within_capacity_come_back_as_go_keeps_them() -> None:
    """Shrinking then growing again re-exposes the old element kept in the backing array."""
    text = (
        '{"secrets":[{"key":"a","namespace":"x"},{"key":"b","namespace":"y"}],'
        '"secrets":[{"key":"c"}],"secrets":[{},{}]}'
    )
    assert secrets(text).secrets == (Sid(key="c", namespace="x"), Sid(key="b", namespace="y"))


def test_elements_beyond_capacity_start_from_zero() -> None:
    """Growing past the capacity allocates fresh zero elements (1 element has capacity 1)."""
    text = '{"secrets":[{"key":"a","namespace":"x"}],"secrets":[{},{}]}'
    assert secrets(text).secrets == (Sid(key="a", namespace="x"), Sid())
    text = (
        '{"secrets":[{"key":"a"},{"key":"b"},{"key":"c"}],"secrets":[{}],"secrets":[{},{},{},{}]}'
    )
    # Capacity after 3 appends is 4, so the fourth element is zero, the second and third stale.
    assert secrets(text).secrets == (Sid(key="a"), Sid(key="b"), Sid(key="c"), Sid())


def test_empty_array_resets_capacity_so_nothing_stale_survives() -> None:
    """[] replaces the slice with a new empty one: earlier elements are gone for good."""
    text = '{"secrets":[{"key":"a","namespace":"x"}],"secrets":[],"secrets":[{}]}'
    assert secrets(text).secrets == (Sid(),)


def test_null_element_leaves_the_element_as_it_was() -> None:
    """A null array element is a no-op for a struct element (zero, or stale if reused)."""
    assert secrets('{"secrets":[null,{"key":"k"}]}').secrets == (Sid(), Sid(key="k"))
    text = '{"secrets":[{"key":"a"}],"secrets":[null]}'
    assert secrets(text).secrets == (Sid(key="a"),)


@pytest.mark.parametrize(
    ("old_cap", "new_cap"),
    [(0, 1), (1, 2), (2, 4), (4, 8), (8, 16), (16, 35), (35, 71), (71, 151), (255, 511)],
)
def test_slice_growth_follows_go_runtime_size_classes(old_cap: int, new_cap: int) -> None:
    """Grow(1) on a full []SecretIdentifier (32-byte elements) gives Go's capacities."""
    assert grow_capacity(old_cap, 32, True) == new_cap


def test_large_slices_grow_by_a_quarter_and_round_to_pages() -> None:
    """Past 256 elements Go grows by ~1.25x plus 192, then rounds to size classes or pages."""
    # 256 + (256 + 768) / 4 = 512 elements = 16 KiB, plus the 8-byte malloc header: 18 KiB class.
    assert grow_capacity(256, 32, True) == 575
    assert grow_capacity(1024, 32, True) == 1536  # 1472 * 32 bytes rounds up to 6 pages


TYPE_ERRORS = [
    (
        '{"workflow_id":1}',
        "json: cannot unmarshal number into Go struct field SecretsRequestParams.workflow_id of type string",
    ),
    (
        '{"owner":true}',
        "json: cannot unmarshal bool into Go struct field SecretsRequestParams.owner of type string",
    ),
    (
        '{"Execution_ID":{}}',
        "json: cannot unmarshal object into Go struct field SecretsRequestParams.execution_id of type string",
    ),
    (
        '{"enclave_public_key":[]}',
        "json: cannot unmarshal array into Go struct field SecretsRequestParams.enclave_public_key of type string",
    ),
    (
        '{"secrets":[{"key":1}]}',
        "json: cannot unmarshal number into Go struct field SecretIdentifier.secrets.key of type string",
    ),
    (
        '{"secrets":[{"NAMESPACE":false}]}',
        "json: cannot unmarshal bool into Go struct field SecretIdentifier.secrets.namespace of type string",
    ),
    (
        '{"secrets":"x"}',
        "json: cannot unmarshal string into Go struct field SecretsRequestParams.secrets of type []confidentialrelay.SecretIdentifier",
    ),
    (
        '{"secrets":{}}',
        "json: cannot unmarshal object into Go struct field SecretsRequestParams.secrets of type []confidentialrelay.SecretIdentifier",
    ),
    (
        '{"secrets":["x"]}',
        "json: cannot unmarshal string into Go struct field SecretsRequestParams.secrets of type confidentialrelay.SecretIdentifier",
    ),
    (
        '{"secrets":[[]]}',
        "json: cannot unmarshal array into Go struct field SecretsRequestParams.secrets of type confidentialrelay.SecretIdentifier",
    ),
    (
        "[]",
        "json: cannot unmarshal array into Go value of type confidentialrelay.SecretsRequestParams",
    ),
    (
        '"x"',
        "json: cannot unmarshal string into Go value of type confidentialrelay.SecretsRequestParams",
    ),
    (
        "12",
        "json: cannot unmarshal number into Go value of type confidentialrelay.SecretsRequestParams",
    ),
    (
        "true",
        "json: cannot unmarshal bool into Go value of type confidentialrelay.SecretsRequestParams",
    ),
]


@pytest.mark.parametrize(("text", "message"), TYPE_ERRORS)
def test_type_errors_carry_go_texts_exactly(text: str, message: str) -> None:
    """Each mismatch reports Go's value kind, struct, key path and Go type."""
    with pytest.raises(GoUnmarshalTypeError) as exc:
        secrets(text)
    assert exc.value.message == message


def test_first_type_error_wins_and_decoding_goes_on() -> None:
    """With two mismatches Go reports the first one; other fields are still decoded."""
    with pytest.raises(GoUnmarshalTypeError) as exc:
        secrets('{"owner":1,"secrets":[{"key":2}],"workflow_id":"w"}')
    assert exc.value.field == "owner"
    with pytest.raises(GoUnmarshalTypeError) as exc:
        secrets('{"secrets":[{"key":2}],"owner":1}')
    assert exc.value.message.endswith("SecretIdentifier.secrets.key of type string")


def test_error_context_returns_to_the_outer_struct_after_a_nested_one() -> None:
    """After decoding a secrets element, a later error names SecretsRequestParams again."""
    with pytest.raises(GoUnmarshalTypeError) as exc:
        secrets('{"secrets":[{"key":"k"}],"owner":5}')
    assert exc.value.message == (
        "json: cannot unmarshal number into Go struct field SecretsRequestParams.owner of type string"
    )


def test_syntax_errors_win_over_earlier_type_errors() -> None:
    """Go validates the whole text first, so a later syntax error beats an earlier type error."""
    with pytest.raises(GoSyntaxError) as exc:
        secrets('{"owner":1,"workflow_id":"x",}')
    assert exc.value.message == "invalid character '}' looking for beginning of object key string"


def test_strings_decode_invalid_text_to_replacement_characters() -> None:
    """Invalid UTF-8 and lone surrogate escapes in values become U+FFFD, as in Go."""
    params = rpc.decode_secrets_params(b'{"workflow_id":"a\xffb","owner":"\\ud800"}')
    assert params.workflow_id == "a\ufffdb"
    assert params.owner == "\ufffd"


def test_capability_params_decode_all_fields() -> None:
    """Every N1-era capability field decodes, case-insensitively, unknown ones ignored."""
    text = (
        b'{"workflow_id":"w","owner":"o","execution_id":"e","org_id":"g","reference_id":"7",'
        b'"CAPABILITY_ID":"my-cap@1.0.0","payload":"cGF5","attestation":"YXR0","x":1}'
    )
    assert rpc.decode_capability_params(text) == rpc.CapabilityRequestParams(
        workflow_id="w",
        owner="o",
        execution_id="e",
        org_id="g",
        reference_id="7",
        capability_id="my-cap@1.0.0",
        payload="cGF5",
        attestation="YXR0",
    )
    with pytest.raises(GoUnmarshalTypeError) as exc:
        rpc.decode_capability_params(b'{"payload":5}')
    assert exc.value.message == (
        "json: cannot unmarshal number into Go struct field CapabilityRequestParams.payload of type string"
    )


def test_envelope_keeps_params_as_exact_raw_bytes() -> None:
    """params is the raw text of the value (whitespace inside kept); null or absent is None."""
    req = rpc.decode_request(b'{"jsonrpc":"2.0","id":"1","method":"m","params": { "a" : 1 } }')
    assert req == rpc.Request(jsonrpc="2.0", id="1", method="m", params=b'{ "a" : 1 }')
    assert rpc.decode_request(b'{"id":"1","params":null}').params is None
    assert rpc.decode_request(b'{"id":"1"}').params is None
    assert rpc.decode_request(b'{"params":"s"}').params == b'"s"'
    assert rpc.decode_request(b'{"params":{},"params":null}').params is None
    assert rpc.decode_request(b'{"PARAMS":[1],"Auth":"t"}') == rpc.Request(params=b"[1]", auth="t")


def test_envelope_type_errors_name_the_generic_request_type() -> None:
    """A non-string id fails with the instantiated generic type's reflect name."""
    with pytest.raises(GoUnmarshalTypeError) as exc:
        rpc.decode_request(b'{"id":1}')
    assert exc.value.message == (
        "json: cannot unmarshal number into Go struct field "
        "Request[encoding/json.RawMessage].id of type string"
    )
    with pytest.raises(GoUnmarshalTypeError) as exc:
        rpc.decode_request(b"[]")
    assert exc.value.message == (
        "json: cannot unmarshal array into Go value of type "
        "jsonrpc2.Request[encoding/json.RawMessage]"
    )


def test_random_bytes_only_ever_raise_go_json_errors() -> None:
    """A bounded fuzz loop: random and mutated inputs never raise anything but GoJSONError."""
    rng = random.Random(99)
    seed = b'{"workflow_id":"w","secrets":[{"key":"k","namespace":"n"},null],"owner":"o"}'
    alphabet = b'{}[]:,"\\ntrufalse0123456789-.eE \x00\xff\xe2\x80\xa8u'
    decoders = [rpc.decode_secrets_params, rpc.decode_capability_params, rpc.decode_request]
    outcomes: set[str] = set()
    for i in range(3000):
        if i % 2:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40)))
        else:
            mutable = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                mutable[rng.randrange(len(mutable))] = rng.choice(alphabet)
            data = bytes(mutable)
        for decode in decoders:
            try:
                decode(data)
                outcomes.add("ok")
            except GoJSONError as exc:
                outcomes.add(type(exc).__name__ if exc.message else "empty message")
    assert outcomes == {"ok", "GoSyntaxError", "GoUnmarshalTypeError"}


def _honest_variants(rng: random.Random) -> bytes:
    """Go-marshalled params, sometimes bent into shapes the fast path must hand back."""
    params = rpc.SecretsRequestParams(
        workflow_id=rng.choice(["wf", "é€", "<&>", "a\\b", ""]),
        owner="0x" + "ab" * 20,
        secrets=rng.choice([None, (), (Sid(key="k", namespace="n"),), (Sid(), Sid(key="x"))]),
        enclave_public_key="aa",
        attestation=rng.choice(["", "QUJD"]),
    )
    text = rpc.encode_secrets_params(params)
    bends: list[Callable[[bytes], bytes]] = [
        lambda t: t,
        lambda t: t.replace(b'"owner"', b'"OWNER"'),
        lambda t: t[:-1] + b',"secrets":[{"namespace":"z"}]}',
        lambda t: t[:-1] + b',"unknown":1}',
        lambda t: t[:-1] + b',"owner":null}',
        lambda t: t.replace(b'"wf"', b'"w\\u0066"'),
        lambda t: t.replace(b'"aa"', b'"a\xffa"'),
        lambda t: b" \n" + t.replace(b",", b" , ") + b"\t",
        lambda t: t[:-1] + b',"secrets":[null]}',
        lambda t: t[:-1] + b',"secrets":null}',
        lambda t: t[:-1] + b',"secrets":[]}',
    ]
    return rng.choice(bends)(text)


def test_fast_path_agrees_with_the_exact_decoder_or_steps_aside() -> None:
    """On honest and bent inputs, msgspec's fast answer always equals the exact decoder's."""
    from schemas.gojson import unmarshal
    from schemas.gojson_fast import FastPath

    fast_path = FastPath(rpc.SECRETS_REQUEST_PARAMS)
    rng = random.Random(11)
    used = 0
    for _ in range(1500):
        text = _honest_variants(rng)
        fast = fast_path.decode(text)
        try:
            exact = unmarshal(text, rpc.SECRETS_REQUEST_PARAMS, fast=False)
        except GoJSONError:
            assert fast is None, text
            continue
        if fast is not None:
            used += 1
            assert {k: v for k, v in fast.items() if k != "secrets"} == {
                k: v for k, v in exact.items() if k != "secrets"
            }, text
            fast_secrets = fast["secrets"] and fast["secrets"].items()
            exact_secrets = exact["secrets"] and exact["secrets"].items()
            assert fast_secrets == exact_secrets, text
    assert used > 300


def test_envelope_fast_path_agrees_with_the_exact_decoder() -> None:
    """Envelopes decoded by msgspec equal the exact decoder's, params bytes included."""
    rng = random.Random(12)
    samples = [
        b'{"jsonrpc":"2.0","id":"1","method":"m","params":{"a" : [1, "x"]}}',
        b'{"jsonrpc":"2.0","id":"1","method":"m","params":null}',
        b'{"jsonrpc":"2.0","id":"1","method":"m"}',
        b'{"id":"1","params":{},"params":[2]}',
        b'{"id":"1","params":{},"params":null}',
        b'{"id":"1","params": "s" ,"auth":"t"}',
        b'{"id":"1","Params":{}}',
        b'{"id":"1","params":[01]}',
    ]
    for _ in range(500):
        text = bytearray(rng.choice(samples))
        if rng.random() < 0.5:
            text[rng.randrange(len(text))] = rng.choice(b' {}[],:"01nul\\x')
        assert _outcome(bytes(text), fast=True) == _outcome(bytes(text), fast=False), text


def _outcome(text: bytes, *, fast: bool) -> object:
    from schemas.gojson import unmarshal

    try:
        return unmarshal(text, rpc.REQUEST, fast=fast)
    except GoJSONError as exc:
        return exc.message


def test_big_params_decode_the_same_on_both_paths() -> None:
    """Thousands of secrets, a megabyte attestation and repeated keys decode fast and alike."""
    from schemas.gojson import unmarshal

    entries = ",".join(f'{{"key":"K{i}","namespace":"main"}}' for i in range(3000))
    text = f'{{"secrets":[{entries}],"attestation":"{"A" * 1_000_000}"}}'.encode()
    fast = rpc.decode_secrets_params(text)
    assert fast.secrets is not None
    assert len(fast.secrets) == 3000
    assert fast.secrets[2999] == Sid(key="K2999", namespace="main")
    exact = unmarshal(text, rpc.SECRETS_REQUEST_PARAMS, fast=False)
    assert exact["secrets"].items()[2999] == {"key": "K2999", "namespace": "main"}
    assert exact["attestation"] == fast.attestation
    # Repeated keys force the exact path; a later short array keeps the earlier elements' fields.
    again = text[:-1] + b',"secrets":[{"key":"X"}]}'
    assert secrets_bytes(again).secrets == (Sid(key="X", namespace="main"),)


def secrets_bytes(text: bytes) -> rpc.SecretsRequestParams:
    return rpc.decode_secrets_params(text)


@pytest.mark.parametrize("depth", [1_000, 5_000, 9_999])
def test_params_nested_deeper_than_msgspec_goes_are_decoded_as_go_does(depth: int) -> None:
    """Go nests up to 10,000 levels; past msgspec's ~1,000 the exact decoder takes over."""
    nested = b"[" * depth + b"]" * depth
    request = rpc.decode_request(b'{"jsonrpc":"2.0","id":"1","method":"m","params":%s}' % nested)
    assert request.params == nested


def test_params_nested_past_gos_limit_get_gos_syntax_error() -> None:
    """At 10,001 levels Go's scanner stops with `exceeded max depth`."""
    nested = b"[" * 10_001 + b"]" * 10_001
    with pytest.raises(GoSyntaxError, match="exceeded max depth"):
        rpc.decode_request(b'{"jsonrpc":"2.0","id":"1","method":"m","params":%s}' % nested)
