"""The current protocol's wire values (PROTOCOL 10.5, 10.7, 10.8, 10.12) decoded and re-marshalled
as Go's encoding/json does: the attested JSON must come back byte for byte."""

from __future__ import annotations

import random

import pytest

from schemas import current, rpc
from schemas.gojson import GoJSONError, GoSlice, unmarshal
from schemas.gojson_fast import FastPath

REQUEST_ID = ",".join(str(i) for i in range(32))
# What a current enclave marshals (Go key order, canonical base64, null for nil slices).
HONEST_SECRETS = (
    '{"workflow_id":"wf","owner":"0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B","execution_id":"e1",'
    '"org_id":"org","secrets":[{"key":"API_KEY","namespace":"main"}],"enclave_public_key":"aabb",'
    '"enclave_config":{"signers":["AQI=","AwQ="],"master_public_key":"BQY=","t":1,"f":1},'
    '"signed_compute_requests":[{"requestID":[' + REQUEST_ID + '],"applicationRequestID":"e1",'
    '"publicData":"CgJ3Zg==","ciphertexts":["Yw=="],"CiphertextNames":["API_KEY"],'
    '"encryptedDecryptionKeyShares":[["cw==","dA=="]],"enclaveEphemeralPublicKey":"ZQ==",'
    '"masterPublicKey":null,"appID":"confidential-workflows@1.0.0-alpha","version":"0.0.6",'
    '"signature":"c2ln","perNodeData":{"a":"1","b":"\\u003c"}}]}'
).encode()


def decode(text: str) -> current.SecretsRequestParams:
    return current.decode_secrets_params(text.encode())


def type_error(text: str) -> str:
    with pytest.raises(GoJSONError) as exc:
        decode(text)
    return exc.value.message


def test_honest_secrets_params_re_marshal_byte_for_byte() -> None:
    """Go-marshalled current params decode and re-encode to the same bytes."""
    params = current.decode_secrets_params(HONEST_SECRETS)
    assert current.encode_secrets_params(params) == HONEST_SECRETS
    assert params.enclave_config == current.EnclaveConfig(
        signers=(b"\x01\x02", b"\x03\x04"), master_public_key=b"\x05\x06", t=1, f=1
    )
    assert params.signed_compute_requests is not None
    entry = params.signed_compute_requests[0]
    assert entry.request_id == bytes(range(32))
    assert entry.ciphertext_names == ("API_KEY",)
    assert entry.encrypted_decryption_key_shares == ((b"s", b"t"),)
    assert entry.per_node_data == {"a": "1", "b": "<"}


def test_omitempty_fields_disappear_and_nil_values_are_null() -> None:
    """Absent enclave_config and compute requests vanish; an empty config writes every key."""
    assert current.encode_secrets_params(decode('{"secrets":[]}')) == (
        b'{"workflow_id":"","owner":"","execution_id":"","secrets":[],"enclave_public_key":""}'
    )
    assert current.encode_secrets_params(
        decode('{"enclave_config":{},"signed_compute_requests":[]}')
    ) == (
        b'{"workflow_id":"","owner":"","execution_id":"","secrets":null,"enclave_public_key":"",'
        b'"enclave_config":{"signers":null,"master_public_key":null,"t":0,"f":0}}'
    )
    assert decode('{"enclave_config":{"f":1},"enclave_config":null}').enclave_config is None


def test_capability_params_always_write_owner_execution_and_reference() -> None:
    """Unlike the N1 struct, the current capability params have no omitempty on those three."""
    params = current.decode_capability_params(b'{"capability_id":"c","payload":"p"}')
    assert current.encode_capability_params(params) == (
        b'{"workflow_id":"","owner":"","execution_id":"","reference_id":"","capability_id":"c",'
        b'"payload":"p"}'
    )
    n1 = rpc.encode_capability_params(rpc.decode_capability_params(b'{"capability_id":"c"}'))
    assert n1 == b'{"workflow_id":"","capability_id":"c","payload":""}'


def test_a_repeated_key_merges_into_the_config_already_there() -> None:
    """Go decodes a repeated object key into the same struct: earlier fields survive."""
    params = decode('{"enclave_config":{"f":3,"t":1},"Enclave_Config":{"t":2}}')
    assert params.enclave_config == current.EnclaveConfig(f=3, t=2)


def test_request_id_is_a_number_array_zero_filled_and_truncated() -> None:
    """A shorter array zero-fills the [32]byte, a longer one drops the rest unchecked."""
    short = decode('{"signed_compute_requests":[{"requestID":[7,8]}]}')
    assert short.signed_compute_requests is not None
    assert short.signed_compute_requests[0].request_id == b"\x07\x08" + bytes(30)
    long = ",".join(["1"] * 32) + ',"x",{}'
    value = decode('{"signed_compute_requests":[{"requestID":[' + long + "]}]}")
    assert value.signed_compute_requests is not None
    assert value.signed_compute_requests[0].request_id == b"\x01" * 32


def test_byte_slices_accept_base64_and_number_arrays() -> None:
    """A []byte decodes from base64 or, as in Go, from an array of numbers; both marshal as base64."""
    value = decode('{"signed_compute_requests":[{"publicData":[104,105],"signature":""}]}')
    assert value.signed_compute_requests is not None
    entry = value.signed_compute_requests[0]
    assert entry.public_data == b"hi"
    assert entry.signature == b""  # empty but not nil: marshals as "" rather than null
    encoded = current.encode_secrets_params(value)
    assert b'"publicData":"aGk="' in encoded
    assert b'"signature":""' in encoded
    assert b'"perNodeData"' not in encoded


def test_a_repeated_string_array_reuses_elements_as_go_does() -> None:
    """A later array's null element keeps the earlier element's value in the reused slice."""
    value = decode(
        '{"signed_compute_requests":[{"CiphertextNames":["a","b"],"ciphertextnames":[null]}]}'
    )
    assert value.signed_compute_requests is not None
    assert value.signed_compute_requests[0].ciphertext_names == ("a",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"enclave_config":{"f":-1}}',
            "json: cannot unmarshal number -1 into Go struct field EnclaveConfig.enclave_config.f"
            " of type uint32",
        ),
        (
            '{"enclave_config":{"t":4294967296}}',
            "json: cannot unmarshal number 4294967296 into Go struct field"
            " EnclaveConfig.enclave_config.t of type uint32",
        ),
        (
            '{"enclave_config":{"t":"1"}}',
            "json: cannot unmarshal string into Go struct field EnclaveConfig.enclave_config.t"
            " of type uint32",
        ),
        (
            '{"enclave_config":[]}',
            "json: cannot unmarshal array into Go struct field SecretsRequestParams.enclave_config"
            " of type confidentialrelay.EnclaveConfig",
        ),
        ('{"enclave_config":{"master_public_key":"AQ="}}', "illegal base64 data at input byte 3"),
        (
            '{"enclave_config":{"signers":[true]}}',
            "json: cannot unmarshal bool into Go struct field EnclaveConfig.enclave_config.signers"
            " of type []uint8",
        ),
        (
            '{"signed_compute_requests":[{"requestID":"AAAA"}]}',
            "json: cannot unmarshal string into Go struct field"
            " SignedComputeRequest.signed_compute_requests.requestID of type [32]uint8",
        ),
        (
            '{"signed_compute_requests":[{"requestID":[256]}]}',
            "json: cannot unmarshal number 256 into Go struct field"
            " SignedComputeRequest.signed_compute_requests.requestID of type uint8",
        ),
        (
            '{"signed_compute_requests":[{"perNodeData":{"k":1}}]}',
            "json: cannot unmarshal number into Go struct field"
            " SignedComputeRequest.signed_compute_requests.perNodeData of type string",
        ),
        (
            '{"signed_compute_requests":[{"encryptedDecryptionKeyShares":[["AQ=="],"x"]}]}',
            "json: cannot unmarshal string into Go struct field"
            " SignedComputeRequest.signed_compute_requests.encryptedDecryptionKeyShares"
            " of type [][]uint8",
        ),
        (
            '{"enclave_config":{"f":-1},"workflow_id":1}',
            "json: cannot unmarshal number -1 into Go struct field EnclaveConfig.enclave_config.f"
            " of type uint32",
        ),
    ],
)
def test_wrong_values_fail_with_go_texts(text: str, message: str) -> None:
    """Each new field kind reports Go's first error, with Go's type names and field path."""
    assert type_error(text) == message


def test_bundles_decode_and_re_marshal_as_the_gateway_normalises_them() -> None:
    """A bundle entry's base64 is canonicalised, an empty signatures dropped, Go key order kept."""
    raw = (
        b'{"responses":[{"signature":{"signature":"AQ==","signer":"Ag=="},'
        b'"result":{"error":"e"},"signatures":[]}]}'
    )
    bundle = current.decode_capability_bundle(raw)
    assert current.encode_capability_bundle(bundle) == (
        b'{"responses":[{"result":{"error":"e"},"signature":{"signer":"Ag==","signature":"AQ=="}}]}'
    )
    empty = current.SignedSecretsResponseBundle(responses=())
    assert current.encode_secrets_bundle(empty) == b'{"responses":[]}'
    assert current.decode_secrets_bundle(b'{"responses":[]}') == empty


def _normal(value: object) -> object:
    """Decoder output with slices as lists, so both decoders' answers compare."""
    if isinstance(value, GoSlice):
        return [_normal(v) for v in value.items()]
    if isinstance(value, tuple | list):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


CURRENT_BENDS: list[tuple[bytes, bytes]] = [
    (b"", b""),
    (b'"f":1', b'"f":-0'),
    (b'"f":1', b'"f":1.0'),
    (b'"f":1', b'"f":null'),
    (b'"f":1', b'"f":"1"'),
    (b'"t":1', b'"t":4294967296'),
    (b'"t":1', b'"t":4294967295'),
    (b"[0,1,2,", b"[0,null,2,"),
    (b"[0,1,2,", b"[0,1,"),
    (b"31]", b'31,"x",{}]'),
    (b"31]", b"31,256]"),
    (b"31]", b'31],"requestID":[null]'),
    (b',"t":1,"f":1}', b'},"enclave_config":{"t":1,"f":1}'),
    (b'"enclave_config":{', b'"Enclave_Config":{'),
    (b'"signature":"c2ln"', b'"signature":"c2ln","perNodeData":{"a":"2"},"perNodeData":{"b":""}'),
    (b'"signature":"c2ln"', b'"signature":"c2ln","perNodeData":{"a":null}'),
    (b'"publicData":"CgJ3Zg=="', b'"publicData":[10,2]'),
    (b'"publicData":"CgJ3Zg=="', b'"publicData":"CgJ3Zg="'),
    (b'"publicData":"CgJ3Zg=="', b'"publicData":null'),
    (b'"CiphertextNames":["API_KEY"]', b'"CiphertextNames":["API_KEY",null]'),
    (b'"CiphertextNames":["API_KEY"]', b'"CiphertextNames":["a","b"],"CiphertextNames":[null]'),
    (b'"signature":"c2ln"', b'"signature":""'),
    (
        b'"encryptedDecryptionKeyShares":[["cw==","dA=="]]',
        b'"encryptedDecryptionKeyShares":[null,[null]]',
    ),
    (b'"signers":["AQI=","AwQ="]', b'"signers":[]'),
    (b'"signers":["AQI=","AwQ="]', b'"signers":[1]'),
]
HONEST_WITHOUT_MAP = HONEST_SECRETS.replace(b',"perNodeData":{"a":"1","b":"\\u003c"}', b"")


def test_fast_path_agrees_with_the_exact_decoder_on_current_params() -> None:
    """msgspec's answer for current params equals the exact decoder's, or it steps aside."""
    fast_path = FastPath(current.SECRETS_REQUEST_PARAMS)
    rng = random.Random(10)
    used = 0
    for _ in range(1500):
        old, new = rng.choice(CURRENT_BENDS)
        text = bytearray(HONEST_WITHOUT_MAP.replace(old, new, 1))
        if rng.random() < 0.3:
            text[rng.randrange(len(text))] = rng.choice(b' {}[],:"01nul-.\\x')
        fast = fast_path.decode(bytes(text))
        try:
            exact = unmarshal(bytes(text), current.SECRETS_REQUEST_PARAMS, fast=False)
        except GoJSONError:
            assert fast is None, bytes(text)
            continue
        if fast is not None:
            used += 1
            assert _normal(fast) == _normal(exact), bytes(text)
    assert used > 300


def test_honest_current_params_take_the_fast_path() -> None:
    """A Go-marshalled current request without perNodeData is decoded by msgspec."""
    assert HONEST_WITHOUT_MAP != HONEST_SECRETS
    assert FastPath(current.SECRETS_REQUEST_PARAMS).decode(HONEST_WITHOUT_MAP) is not None
    assert FastPath(current.CAPABILITY_REQUEST_PARAMS).decode(b'{"payload":"p"}') is not None
