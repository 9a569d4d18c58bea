"""The enclave's requests bind exactly what the relay recomputes, for DomainHash v1 and v2."""

from __future__ import annotations

import base64
import json

import cbor2
import pytest
from google.protobuf import any_pb2, wrappers_pb2

from schemas.proto.gen import sdk_pb2
from workers.attestation.testchain import TestChain
from workers.enclave import pb, requests
from workers.enclave.attest import SimulatedSource
from workers.protocol import binding, enclave_config

OWNER = "0xab5801a7d398351b8be11c439e05c5b3259aec9b"


@pytest.fixture(scope="module")
def source() -> SimulatedSource:
    return SimulatedSource(TestChain())


def secrets() -> requests.Params:
    return requests.secrets_params(
        workflow_id="wf <1> & \u00e9",
        owner_address=OWNER,
        execution_id="00" * 32,
        secrets=[("", "API_KEY"), ("team", "DB")],
        enclave_public_key="ab" * 32,
    )


def capability() -> requests.Params:
    return requests.capability_params(
        workflow_id="wf",
        owner_address=OWNER,
        execution_id="01" * 32,
        reference_id="7",
        capability_id="echo@1.0.0",
        payload=pb.capability_request("echo", type_url="t", value=b"v"),
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("build", [secrets, capability], ids=["secrets", "capability"])
def test_the_documents_user_data_is_what_the_relay_recomputes_from_the_sent_body(
    source: SimulatedSource, version: binding.DomainHashVersion, build: object
) -> None:
    """The relay's `binding.bind` of the sent params equals the attested document's user_data."""
    prepared = requests.prepare(build(), request_id="r-1", source=source, version=version)  # type: ignore[operator]
    body = json.loads(prepared.body)
    assert (body["jsonrpc"], body["id"], body["method"]) == ("2.0", "r-1", prepared.method)
    raw_params = json.dumps(body["params"]).encode()
    bound = binding.bind(prepared.method, raw_params, version)
    document = cbor2.loads(base64.b64decode(bound.attestation))
    assert cbor2.loads(document[2])["user_data"] == bound.user_data
    other: binding.DomainHashVersion = "v2" if version == "v1" else "v1"
    assert binding.bind(prepared.method, raw_params, other).user_data != bound.user_data


def test_the_owner_is_sent_in_eip55_form_and_an_empty_namespace_as_main() -> None:
    """As upstream's enclave marshals: checksum owner, namespace `main` by default."""
    params = json.loads(requests.params_json(secrets()))
    assert params["owner"] == "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"
    assert params["secrets"] == [
        {"key": "API_KEY", "namespace": "main"},
        {"key": "DB", "namespace": "team"},
    ]


@pytest.mark.parametrize("callback_id", [0, 3, -1])
def test_the_hand_written_capability_request_is_protobufs_own_encoding(callback_id: int) -> None:
    """pb.capability_request equals sdk_pb2's deterministic serialisation of the same message."""
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="hi"))
    expected = sdk_pb2.CapabilityRequest(method="echo", payload=inner, callback_id=callback_id)
    ours = pb.capability_request(
        "echo", type_url=inner.type_url, value=inner.value, callback_id=callback_id
    )
    assert ours == expected.SerializeToString(deterministic=True)


def test_a_capability_response_is_read_as_protobuf_writes_it() -> None:
    """Payload Any, error string and the empty answer decode as sdk_pb2 encodes them."""
    inner = any_pb2.Any()
    inner.Pack(wrappers_pb2.StringValue(value="hi"))
    read = pb.capability_response(sdk_pb2.CapabilityResponse(payload=inner).SerializeToString())
    assert (read.type_url, read.value, read.has_payload) == (inner.type_url, inner.value, True)
    read = pb.capability_response(sdk_pb2.CapabilityResponse(error="boom").SerializeToString())
    assert (read.error, read.has_payload) == ("boom", False)
    assert pb.capability_response(b"") == pb.CapabilityResponse()
    with pytest.raises(pb.ProtobufError):
        pb.capability_response(b"\x0a\x05ab")


@pytest.mark.parametrize("method", ["secrets", "capability"])
def test_current_params_carry_the_enclave_config_and_bind_as_the_current_relay_recomputes(
    source: SimulatedSource, method: str
) -> None:
    """With an EnclaveConfig: the current field set, DomainHash v2, equal to bind_current's."""
    config = enclave_config.for_don([bytes([i]) * 32 for i in (3, 1, 2)], 1, b"mpk", 1)
    if method == "secrets":
        params: requests.Params = requests.secrets_params(
            workflow_id="wf",
            owner_address=OWNER,
            execution_id="00" * 32,
            secrets=[("", "K")],
            enclave_public_key="ab" * 32,
            enclave_config=config,
        )
    else:
        params = requests.capability_params(
            workflow_id="wf",
            owner_address=OWNER,
            execution_id="00" * 32,
            reference_id="",
            capability_id="echo@1.0.0",
            payload=b"",
            enclave_config=config,
        )
    prepared = requests.prepare(params, request_id="r-2", source=source, version="v2")
    sent = json.loads(prepared.body)["params"]
    assert sent["enclave_config"]["f"] == 1
    if method == "capability":  # never omitted under current (10.12), even when empty
        assert sent["reference_id"] == ""
    bound = binding.bind_current(prepared.method, json.dumps(sent).encode())
    document = cbor2.loads(base64.b64decode(bound.attestation))
    assert cbor2.loads(document[2])["user_data"] == bound.user_data
