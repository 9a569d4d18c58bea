"""The attestation binding (PROTOCOL 3.1, 8.5) and Go's base64 decoding (3.2, 8.2)."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from schemas import rpc
from schemas.gojson import GoSyntaxError, GoUnmarshalTypeError
from workers.protocol import binding

VECTOR_PARAMS = (
    b'{"workflow_id":"wf-secrets-1","owner":"0xab5801a7d398351b8be11c439e05c5b3259aec9b",'
    b'"execution_id":"0000000000000000000000000000000000000000000000000000000000000001",'
    b'"secrets":[{"key":"API_KEY","namespace":"main"}],"enclave_public_key":"aabbcc"}'
)


@pytest.mark.parametrize(
    ("tag", "data", "version", "digest"),
    [
        (
            "TestTag",
            b'{"key":"value"}',
            "v1",
            "0c2319f5e85f70ef309882b2df6baf63d55eec82a7b9f4c3224b8fa461cfba4d",
        ),
        (
            "TestTag",
            b'{"key":"value"}',
            "v2",
            "69b25f1b84c24423ed0d99b4bc2c5669232fc70b4fa94f302f452b8d7e526a62",
        ),
        (
            "ConfidentialSecretsGet",
            VECTOR_PARAMS,
            "v1",
            "e4b66528cfe9daf0c6cecc5f1c41e6a2710c6775967b9b4c1e8cf864cdc4c321",
        ),
        (
            "ConfidentialSecretsGet",
            VECTOR_PARAMS,
            "v2",
            "747dfcdf1a82efd9089adfdbc79f5c551b2075f492f3be15ba64de8a82fa1263",
        ),
    ],
)
def test_domain_hash_matches_every_protocol_vector(
    tag: str, data: bytes, version: binding.DomainHashVersion, digest: str
) -> None:
    """DomainHash v1 and v2 reproduce the four 8.5 vectors."""
    assert binding.domain_hash(tag, data, version).hex() == digest


def test_domain_hash_versions_are_built_as_specified() -> None:
    """v1 joins with newlines; v2 length-prefixes tag and data with 8-byte big-endian sizes."""
    sep = b"CONFIDENTIAL_COMPUTE_PAYLOAD"
    assert binding.domain_hash("T", b"d", "v1") == hashlib.sha256(sep + b"\nT\nd").digest()
    v2 = sep + (1).to_bytes(8, "big") + b"T" + (1).to_bytes(8, "big") + b"d"
    assert binding.domain_hash("T", b"d", "v2") == hashlib.sha256(v2).digest()
    with pytest.raises(ValueError, match="unknown DomainHash version"):
        binding.domain_hash("T", b"d", "v3")  # type: ignore[arg-type]


def test_bind_removes_the_attestation_and_hashes_go_bytes() -> None:
    """The enclave's params with attestation bind to the vector hash of the 244-byte JSON."""
    attested = VECTOR_PARAMS[:-1] + b',"attestation":"ZHVtbXktYXR0ZXN0YXRpb24="}'
    bound = binding.bind(rpc.MethodSecretsGet, attested)
    assert bound.attestation == "ZHVtbXktYXR0ZXN0YXRpb24="
    assert bound.params_json == VECTOR_PARAMS
    assert (
        bound.user_data.hex() == "e4b66528cfe9daf0c6cecc5f1c41e6a2710c6775967b9b4c1e8cf864cdc4c321"
    )
    assert binding.bind(rpc.MethodSecretsGet, attested, "v2").user_data.hex() == (
        "747dfcdf1a82efd9089adfdbc79f5c551b2075f492f3be15ba64de8a82fa1263"
    )
    assert isinstance(bound.params, rpc.SecretsRequestParams)
    assert bound.params.secrets == (rpc.SecretIdentifier(key="API_KEY", namespace="main"),)


def test_bind_normalises_sender_quirks_the_way_go_does() -> None:
    """Whitespace, key case, unknown keys, key order and escapes do not change the hash."""
    quirky = (
        b' {"ATTESTATION":"eA==", "enclave_public_key":"aabbcc","junk":[1,2],'
        b'"SECRETS":[{"namespace":"main","key":"API_\\u004bEY"}],'
        b'"execution_id":"0000000000000000000000000000000000000000000000000000000000000001",'
        b'"owner":"0xab5801a7d398351b8be11c439e05c5b3259aec9b","Workflow_ID":"wf-secrets-1"} '
    )
    bound = binding.bind(rpc.MethodSecretsGet, quirky)
    assert bound.params_json == VECTOR_PARAMS
    assert bound.attestation == "eA=="


def test_bind_capability_params_round_trip() -> None:
    """Capability params re-marshal in struct order without attestation, and hash with their tag."""
    raw = b'{"payload":"cA==","capability_id":"echo@1.0.0","workflow_id":"w","attestation":"YQ==","reference_id":"4"}'
    bound = binding.bind(rpc.MethodCapabilityExec, raw)
    expected = (
        b'{"workflow_id":"w","reference_id":"4","capability_id":"echo@1.0.0","payload":"cA=="}'
    )
    assert bound.params_json == expected
    assert bound.user_data == binding.domain_hash("ConfidentialCapabilityExecute", expected)
    again = binding.bind(rpc.MethodCapabilityExec, bound.params_json)
    assert again.params_json == expected
    assert again.attestation == ""


def test_bind_is_stable_over_random_go_encoded_params() -> None:
    """Re-binding the re-marshalled JSON is a fixed point for many generated params."""
    rng = random.Random(5)
    pool = ["", "a", "é", "<&>", "\u2028", '"', "\\", "\n", "\x01", "😀", "0x" + "ab" * 20]
    for _ in range(300):
        secrets = (
            None
            if rng.random() < 0.3
            else tuple(
                rpc.SecretIdentifier(key=rng.choice(pool), namespace=rng.choice(pool))
                for _ in range(rng.randint(0, 3))
            )
        )
        params = rpc.SecretsRequestParams(
            workflow_id=rng.choice(pool),
            owner=rng.choice(pool),
            org_id=rng.choice(pool),
            secrets=secrets,
            enclave_public_key=rng.choice(pool),
            attestation=rng.choice(pool),
        )
        bound = binding.bind(rpc.MethodSecretsGet, rpc.encode_secrets_params(params))
        assert isinstance(bound.params, rpc.SecretsRequestParams)
        assert bound.params.secrets == secrets
        assert bound.attestation == params.attestation
        assert (
            binding.bind(rpc.MethodSecretsGet, bound.params_json).params_json == bound.params_json
        )


def test_bind_reports_go_decode_errors_and_unknown_methods() -> None:
    """Bad params raise Go's text; an unknown method raises the -32601 wire text."""
    with pytest.raises(GoSyntaxError) as syntax:
        binding.bind(rpc.MethodSecretsGet, b"{i")
    assert (
        syntax.value.message == "invalid character 'i' looking for beginning of object key string"
    )
    with pytest.raises(GoUnmarshalTypeError) as typed:
        binding.bind(rpc.MethodCapabilityExec, b'{"capability_id":1}')
    assert "CapabilityRequestParams.capability_id" in typed.value.message
    with pytest.raises(binding.UnknownMethodError) as unknown:
        binding.bind("confidential.nope", b"{}")
    assert unknown.value.message == "unsupported method: confidential.nope"


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("", b""),
        ("ZHVtbXktYXR0ZXN0YXRpb24=", b"dummy-attestation"),
        ("QUJD", b"ABC"),
        ("QUI=", b"AB"),
        ("QQ==", b"A"),
        ("QR==", b"A"),  # non-zero trailing bits: StdEncoding is not strict
        ("QU\nJD\r\n", b"ABC"),
        ("QQ=\r\n=", b"A"),
    ],
)
def test_go_base64_accepts_what_std_encoding_accepts(text: str, decoded: bytes) -> None:
    """Padded standard base64 decodes; CR and LF are skipped anywhere."""
    assert binding.go_base64_decode(text) == decoded
    assert binding.go_base64_error(text) == ""


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("Q", 0),
        ("QQ", 0),
        ("QQ=", 3),
        ("QUJD=", 4),
        ("QUJDQ", 4),
        ("QQ==QQ==", 4),
        ("Q===", 1),
        ("=", 0),
        ("QUJ!", 3),
        ("QU-_", 2),
        ("QUJD\nQ", 5),
        ("AB\nC", 1),
        ("QQ==\nx", 5),
        ("QQ=x", 2),
        ("éQ==", 0),
    ],
)
def test_go_base64_errors_name_the_byte_go_names(text: str, offset: int) -> None:
    """Corrupt input fails with `illegal base64 data at input byte N` at Go's N."""
    with pytest.raises(binding.GoBase64Error) as exc:
        binding.go_base64_decode(text)
    assert exc.value.message == f"illegal base64 data at input byte {offset}"
    assert binding.go_base64_error(text) == exc.value.message


def test_go_base64_round_trips_random_bytes_with_and_without_newlines() -> None:
    """Every std encoding decodes back, also when wrapped with CRLF like PEM bodies."""
    rng = random.Random(3)
    for size in range(0, 200, 7):
        data = rng.randbytes(size)
        text = base64.b64encode(data).decode()
        wrapped = "\r\n".join(text[i : i + 16] for i in range(0, len(text), 16))
        assert binding.go_base64_decode(text) == data
        assert binding.go_base64_decode(wrapped) == data


def test_bind_current_attests_the_current_field_set_with_domain_hash_v2() -> None:
    """Current params keep enclave_config in the attested JSON, drop attestation, and use v2."""
    params_json = (
        b'{"workflow_id":"wf","owner":"o","execution_id":"e","secrets":null,'
        b'"enclave_public_key":"aa","enclave_config":{"signers":["AQ=="],'
        b'"master_public_key":"Ag==","t":0,"f":1}}'
    )
    sent = params_json[:-1] + b',"attestation":"ZHVtbXk="}'
    bound = binding.bind_current(rpc.MethodSecretsGet, sent)
    assert bound.params_json == params_json
    assert bound.attestation == "ZHVtbXk="
    tag = b"ConfidentialSecretsGet"
    v2 = (
        b"CONFIDENTIAL_COMPUTE_PAYLOAD"
        + len(tag).to_bytes(8, "big")
        + tag
        + len(params_json).to_bytes(8, "big")
        + params_json
    )
    assert bound.user_data == hashlib.sha256(v2).digest()
    # The N1 binding of the same bytes drops the unknown enclave_config key.
    assert b"enclave_config" not in binding.bind(rpc.MethodSecretsGet, sent).params_json
    capability = binding.bind_current(rpc.MethodCapabilityExec, b'{"capability_id":"c"}', "v1")
    assert capability.params_json == (
        b'{"workflow_id":"","owner":"","execution_id":"","reference_id":"","capability_id":"c",'
        b'"payload":""}'
    )
