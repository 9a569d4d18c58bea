"""Signed relay responses (PROTOCOL 10.1-10.5), every expected byte rebuilt from the spec's tables.

The expected hashes, payloads and JSON below are assembled by hand in the test (struct layouts,
literal prefixes, `base64` of the std library) and the signatures are checked with
pycryptodome's independent Ed25519, so none of them comes from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import msgspec
import pytest
from Crypto.Signature import eddsa

from schemas import current, rpc
from workers.protocol import signed

OWNER = "0x" + "ab" * 20
SEP = b"CONFIDENTIAL_COMPUTE_PAYLOAD"
# RFC 8032 section 7.1, tests 1 and 2.
RFC_SEED_1 = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUB_1 = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG_1 = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065"
    "224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
RFC_SEED_2 = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC_PUB_2 = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC_SIG_2 = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def be64(n: int) -> bytes:
    return struct.pack(">Q", n)


def s(b: bytes) -> bytes:
    return be64(len(b)) + b


def sid(key: str, namespace: str) -> rpc.SecretIdentifier:
    return rpc.SecretIdentifier(key=key, namespace=namespace)


def secrets_params(**changes: object) -> current.SecretsRequestParams:
    base = current.SecretsRequestParams(
        workflow_id="wf",
        owner=OWNER,
        execution_id="e1",
        secrets=(sid("B", "main"), sid("A", "main"), sid("Z", "aaa")),
        enclave_public_key="aabb",
    )
    return msgspec.structs.replace(base, **changes)


def capability_params(**changes: object) -> current.CapabilityRequestParams:
    base = current.CapabilityRequestParams(
        workflow_id="wf",
        owner=OWNER,
        execution_id="e1",
        reference_id="7",
        capability_id="echo@1.0.0",
        payload="cGF5",
    )
    return msgspec.structs.replace(base, **changes)


CONFIG = current.EnclaveConfig(
    signers=(b"\x09\x09", b"\x01\x02\x03"), master_public_key=b"MPK", t=2, f=1
)
EC_BYTES = (
    be64(2)
    + s(b"\x01\x02\x03")
    + s(b"\x09\x09")
    + s(b"MPK")
    + b"\x00\x00\x00\x02"
    + b"\x00\x00\x00\x01"
)

SECRETS_RESULT = rpc.SecretsResponseResult(
    secrets=(
        rpc.SecretEntry(id=sid("A", "main"), ciphertext="Y3Q=", encrypted_shares=("czI=", "czE=")),
        rpc.SecretEntry(id=sid("Z", "aaa"), ciphertext="", encrypted_shares=None),
    )
)


def expected_secrets_hash(with_config: bool) -> bytes:
    layout = (
        SEP
        + b"\nSecretsResponseResult\n"
        + s(b"wf")
        + s(OWNER.encode())
        + s(b"e1")
        + be64(0)  # empty org_id is written
        + be64(3)
        # sorted by namespace, then key; key written first
        + s(b"Z")
        + s(b"aaa")
        + s(b"A")
        + s(b"main")
        + s(b"B")
        + s(b"main")
        + s(b"aabb")
        + (EC_BYTES if with_config else b"")
        + be64(2)
        + s(b"Z")
        + s(b"aaa")
        + s(b"")
        + be64(0)
        + s(b"A")
        + s(b"main")
        + s(b"Y3Q=")
        + be64(2)
        + s(b"czE=")
        + s(b"czI=")
    )
    return hashlib.sha256(layout).digest()


def test_secrets_response_hash_is_the_10_2_layout() -> None:
    """The secrets hash sorts ids and entries, writes key before namespace and hashes base64 text."""
    assert signed.secrets_response_hash(secrets_params(), SECRETS_RESULT) == (
        expected_secrets_hash(False)
    )


def test_secrets_response_hash_binds_the_enclave_config_with_sorted_signers() -> None:
    """A present enclave_config adds EC (signers sorted bytewise, key, u32 t, u32 f)."""
    with_config = secrets_params(enclave_config=CONFIG)
    assert signed.secrets_response_hash(with_config, SECRETS_RESULT) == expected_secrets_hash(True)
    reordered = current.EnclaveConfig(
        signers=(b"\x01\x02\x03", b"\x09\x09"), master_public_key=b"MPK", t=2, f=1
    )
    assert signed.secrets_response_hash(
        secrets_params(enclave_config=reordered), SECRETS_RESULT
    ) == expected_secrets_hash(True)


def test_secrets_response_hash_of_a_nil_result_writes_count_zero() -> None:
    """A nil and an empty result list both hash as count(0); lengths are UTF-8 bytes."""
    params = secrets_params(workflow_id="wé", secrets=(sid("k", "n"),), org_id="org")
    layout = (
        SEP
        + b"\nSecretsResponseResult\n"
        + s("wé".encode())
        + s(OWNER.encode())
        + s(b"e1")
        + s(b"org")
        + be64(1)
        + s(b"k")
        + s(b"n")
        + s(b"aabb")
        + be64(0)
    )
    want = hashlib.sha256(layout).digest()
    assert signed.secrets_response_hash(params, rpc.SecretsResponseResult(secrets=None)) == want
    assert signed.secrets_response_hash(params, rpc.SecretsResponseResult(secrets=())) == want


def test_capability_response_hash_is_the_10_2_layout() -> None:
    """The capability hash binds the params, EC when present, then payload and error."""
    result = rpc.CapabilityResponseResult(payload="b3V0", error="")
    head = (
        SEP
        + b"\nCapabilityResponseResult\n"
        + s(b"wf")
        + s(OWNER.encode())
        + s(b"e1")
        + be64(0)
        + s(b"7")
        + s(b"echo@1.0.0")
        + s(b"cGF5")
    )
    tail = s(b"b3V0") + s(b"")
    assert signed.capability_response_hash(capability_params(), result) == (
        hashlib.sha256(head + tail).digest()
    )
    assert signed.capability_response_hash(capability_params(enclave_config=CONFIG), result) == (
        hashlib.sha256(head + EC_BYTES + tail).digest()
    )
    failed = rpc.CapabilityResponseResult(error="boom")
    assert signed.response_hash(rpc.MethodCapabilityExec, capability_params(), failed) == (
        hashlib.sha256(head + s(b"") + s(b"boom")).digest()
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"workflow_id": ""}, "workflow_id is required"),
        ({"workflow_id": "", "owner": ""}, "workflow_id is required"),
        ({"owner": ""}, "owner is required"),
        ({"owner": "0X" + "ab" * 20}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"owner": OWNER[:-1]}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"owner": OWNER + "a"}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"owner": "0x" + "g" * 40}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"owner": "0x" + "é" * 20}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"owner": "", "execution_id": ""}, "owner is required"),
        ({"execution_id": ""}, "execution_id is required"),
        ({"enclave_public_key": ""}, "enclave_public_key is required"),
        ({"enclave_public_key": "abc"}, "enclave_public_key must be hex-encoded"),
        ({"enclave_public_key": "zz"}, "enclave_public_key must be hex-encoded"),
        ({"secrets": None}, "secrets must be non-empty"),
        ({"secrets": ()}, "secrets must be non-empty"),
        ({"secrets": (sid("a", "b"), sid("", ""))}, "secrets[1].key is required"),
        ({"secrets": (sid("a", ""), sid("", ""))}, "secrets[0].namespace is required"),
        (
            {"enclave_config": current.EnclaveConfig(signers=(), master_public_key=b"k", f=1)},
            "enclave_config.signers must be non-empty",
        ),
        (
            {"enclave_config": current.EnclaveConfig(signers=(b"a", None), f=1)},
            "enclave_config.signers[1] is empty",
        ),
        (
            {"enclave_config": current.EnclaveConfig(signers=(b"a",), master_public_key=b"k")},
            "enclave_config.f must be > 0",
        ),
        (
            {"enclave_config": current.EnclaveConfig(signers=(b"a",), f=1)},
            "enclave_config.master_public_key must be non-empty",
        ),
    ],
)
def test_validate_secrets_names_the_first_failing_check(
    changes: dict[str, object], reason: str
) -> None:
    """Each secrets Validate row fails with its text, the earliest check winning."""
    params = secrets_params(**changes)
    with pytest.raises(signed.InvalidParamsError) as exc:
        signed.validate_secrets(params)
    assert exc.value.message == f"invalid secrets request params: {reason}"
    with pytest.raises(signed.InvalidParamsError) as hashed:
        signed.secrets_response_hash(params, SECRETS_RESULT)
    assert hashed.value.message == exc.value.message


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"workflow_id": ""}, "workflow_id is required"),
        ({"owner": ""}, "owner is required"),
        ({"owner": "ab" * 21}, "owner must be a 0x-prefixed 20-byte hex address"),
        ({"execution_id": ""}, "execution_id is required"),
        ({"reference_id": "", "capability_id": ""}, "reference_id is required"),
        ({"capability_id": "", "payload": ""}, "capability_id is required"),
        ({"payload": ""}, "payload is required"),
        (
            {"enclave_config": current.EnclaveConfig(signers=None)},
            "enclave_config.signers must be non-empty",
        ),
    ],
)
def test_validate_capability_names_the_first_failing_check(
    changes: dict[str, object], reason: str
) -> None:
    """Each capability Validate row fails with its text."""
    with pytest.raises(signed.InvalidParamsError) as exc:
        signed.capability_response_hash(
            capability_params(**changes), rpc.CapabilityResponseResult()
        )
    assert exc.value.message == f"invalid capability request params: {reason}"


def test_validate_accepts_upper_case_hex_and_a_zero_t() -> None:
    """Hex digits of either case pass, `t` may be 0 and org_id is never checked."""
    config = current.EnclaveConfig(signers=(b"a",), master_public_key=b"k", t=0, f=1)
    signed.validate_secrets(
        secrets_params(owner="0x" + "AB" * 20, enclave_public_key="AABB", enclave_config=config)
    )
    signed.validate_capability(capability_params(org_id="any thing"))


def payload_by_table(prefix: bytes, message: bytes) -> bytes:
    return (
        b"\x20" * 64
        + b"ragep2p arbitrary message signing"
        + b"\x00"
        + be64(len(prefix))
        + prefix
        + b"\x00"
        + be64(len(message))
        + message
    )


def test_relay_payload_is_the_174_bytes_of_the_10_4_table() -> None:
    """The payload puts each part at the table's offset and totals 174 bytes."""
    h = bytes(range(32))
    payload = signed.relay_payload(h)
    assert payload == payload_by_table(b"CONFIDENTIAL_RELAY_PAYLOAD_", h)
    assert len(payload) == 174
    assert payload[64:97] == b"ragep2p arbitrary message signing"
    assert payload[98:106] == be64(27)
    assert payload[133] == 0
    assert payload[142:] == h


def test_peerid_payload_hashes_messages_over_1024_bytes() -> None:
    """Up to 1024 bytes the message is written with its length; beyond, 0x01 and its SHA-256."""
    at_limit = b"x" * 1024
    assert signed.peerid_payload("P_", at_limit) == payload_by_table(b"P_", at_limit)
    over = b"x" * 1025
    head = b"\x20" * 64 + b"ragep2p arbitrary message signing\x00" + be64(2) + b"P_"
    assert signed.peerid_payload("P_", over) == head + b"\x01" + hashlib.sha256(over).digest()


@pytest.mark.parametrize(
    ("seed", "public", "message", "signature"),
    [
        (RFC_SEED_1, RFC_PUB_1, b"", RFC_SIG_1),
        (RFC_SEED_2, RFC_PUB_2, b"\x72", RFC_SIG_2),
    ],
)
def test_node_key_signs_the_rfc_8032_vectors(
    seed: bytes, public: bytes, message: bytes, signature: bytes
) -> None:
    """The node key is pure Ed25519: the RFC 8032 test vectors come out exactly."""
    key = signed.NodeKey(seed)
    assert key.public_key == public
    assert key.sign(message) == signature
    assert signed.verify(public, message, signature)
    assert not signed.verify(public, message + b"!", signature)


def test_node_key_refuses_a_seed_of_the_wrong_size_and_hides_it() -> None:
    """A seed that is not 32 bytes or not hex is refused; repr shows only the public key."""
    with pytest.raises(signed.InvalidKeyError):
        signed.NodeKey(b"\x01" * 31)
    with pytest.raises(signed.InvalidKeyError):
        signed.NodeKey.from_hex("zz" * 32)
    key = signed.NodeKey.from_hex(RFC_SEED_1.hex() + "\n")
    assert RFC_SEED_1.hex() not in repr(key)
    assert RFC_PUB_1.hex() in repr(key)


def test_verify_refuses_malleable_and_malformed_input_without_raising() -> None:
    """A non-canonical S (S + L), a short signature or a key of the wrong length is just False."""
    order = 2**252 + 27742317777372353535851937790883648493
    s_value = int.from_bytes(RFC_SIG_1[32:], "little")
    malleable = RFC_SIG_1[:32] + (s_value + order).to_bytes(32, "little")
    assert not signed.verify(RFC_PUB_1, b"", malleable)
    assert not signed.verify(RFC_PUB_1, b"", RFC_SIG_1[:63])
    assert not signed.verify(RFC_PUB_1[:31], b"", RFC_SIG_1)
    assert not signed.verify(RFC_PUB_1 + b"\x00", b"", RFC_SIG_1)


def test_find_signer_returns_the_first_key_in_order_that_verifies() -> None:
    """Keys are tried in the given order; the first that verifies wins, none gives None."""
    keys = [RFC_PUB_2, b"short", RFC_PUB_1, RFC_PUB_1]
    assert signed.find_signer(keys, b"", RFC_SIG_1) == 2
    assert signed.find_signer([RFC_PUB_2], b"", RFC_SIG_1) is None


def test_signed_capability_result_is_go_json_with_a_verifiable_signature() -> None:
    """The wire JSON is Go's, and its signature verifies (pycryptodome) over the 10.4 payload."""
    key = signed.NodeKey(RFC_SEED_2)
    params = capability_params()
    result = rpc.CapabilityResponseResult(payload="b3V0")
    wire = signed.sign_result_json(key, rpc.MethodCapabilityExec, params, result)
    h = hashlib.sha256(
        SEP
        + b"\nCapabilityResponseResult\n"
        + s(b"wf")
        + s(OWNER.encode())
        + s(b"e1")
        + be64(0)
        + s(b"7")
        + s(b"echo@1.0.0")
        + s(b"cGF5")
        + s(b"b3V0")
        + s(b"")
    ).digest()
    payload = payload_by_table(b"CONFIDENTIAL_RELAY_PAYLOAD_", h)
    other = eddsa.import_private_key(RFC_SEED_2)
    sig = eddsa.new(other, "rfc8032").sign(payload)
    eddsa.new(other.public_key(), "rfc8032").verify(payload, sig)  # raises if not
    sig_json = (
        '{"signer":"' + base64.b64encode(RFC_PUB_2).decode() + '",'
        '"signature":"' + base64.b64encode(sig).decode() + '"}'
    )
    assert wire.decode() == (
        '{"result":{"payload":"b3V0"},"signatures":[' + sig_json + '],"signature":' + sig_json + "}"
    )


def test_signed_secrets_result_escapes_like_go_and_round_trips() -> None:
    """An HTML character in a ciphertext is escaped as Go does; decoding gives the value back."""
    key = signed.NodeKey(RFC_SEED_1)
    result = rpc.SecretsResponseResult(
        secrets=(rpc.SecretEntry(id=sid("A", "main"), ciphertext="<&>", encrypted_shares=()),)
    )
    params = secrets_params(secrets=(sid("A", "main"),))
    value = signed.sign_secrets(key, params, result)
    wire = current.encode_signed_secrets_result(value)
    assert wire.startswith(
        b'{"result":{"secrets":[{"id":{"key":"A","namespace":"main"},'
        b'"ciphertext":"\\u003c\\u0026\\u003e","encrypted_shares":[]}]},"signatures":[{'
    )
    assert current.decode_signed_secrets_result(wire) == value
    h = signed.secrets_response_hash(params, result)
    assert value.signature.signature is not None
    assert signed.verify(RFC_PUB_1, signed.relay_payload(h), value.signature.signature)


def test_signing_invalid_params_fails_before_any_signature() -> None:
    """Validate runs at signing: invalid params raise InvalidParamsError, as upstream's Hash."""
    key = signed.NodeKey(RFC_SEED_1)
    with pytest.raises(signed.InvalidParamsError, match="invalid capability request params"):
        signed.sign_capability(key, capability_params(payload=""), rpc.CapabilityResponseResult())
    with pytest.raises(signed.UnknownMethodError):
        signed.sign_result_json(key, "x", capability_params(), rpc.CapabilityResponseResult())


def test_an_empty_or_unsigned_result_is_normalised_as_the_gateway_does() -> None:
    """Decoding then re-marshalling drops an empty `signatures` and writes a null signature."""
    value = current.decode_signed_capability_result(b'{"result":{},"signatures":[]}')
    assert current.encode_signed_capability_result(value) == (
        b'{"result":{},"signature":{"signer":null,"signature":null}}'
    )
    secrets = current.decode_signed_secrets_result(b"{}")
    assert current.encode_signed_secrets_result(secrets) == (
        b'{"result":{"secrets":null},"signature":{"signer":null,"signature":null}}'
    )


def test_check_relay_signature_uses_the_config_order_and_the_enclave_texts() -> None:
    """The first configured signer that verifies wins; a bad length or no match has its text."""
    key = signed.NodeKey(RFC_SEED_2)
    h = hashlib.sha256(b"response").digest()
    entry = key.sign_hash(h)
    assert entry.signature is not None
    assert signed.check_relay_signature([RFC_PUB_1, RFC_PUB_2, RFC_PUB_2], h, entry.signature) == 1
    with pytest.raises(signed.SignatureRejected) as short:
        signed.check_relay_signature([RFC_PUB_2], h, entry.signature[:10])
    assert short.value.message == "invalid signature length: expected 64 bytes, got 10"
    with pytest.raises(signed.SignatureRejected) as missing:
        signed.check_relay_signature([RFC_PUB_2], h, None)
    assert missing.value.message == "invalid signature length: expected 64 bytes, got 0"
    with pytest.raises(signed.SignatureRejected) as other:
        signed.check_relay_signature([RFC_PUB_1], h, entry.signature)
    assert other.value.message == "signature not from any allowed signer"
