"""`relay bench pipeline --current`'s own parts: its requests pass every current-protocol check."""

from __future__ import annotations

import base64
import json
import time

import pytest

from schemas import current, rpc
from workers.attestation import MeasurementIndex, TrustRoots, Verifier
from workers.attestation.testchain import TestChain
from workers.bench import current as bench_current
from workers.bench.pipeline import BenchFailed, check_answer
from workers.protocol import binding, compute_request, enclave_config
from workers.registry.devseed import dev_peer_id


@pytest.fixture(scope="module")
def chain() -> TestChain:
    return TestChain()


def test_minted_current_requests_are_attested_with_v2_and_authorised_by_the_dev_workflow_don(
    chain: TestChain,
) -> None:
    """Each request verifies bound with DomainHash v2, its EnclaveConfig matches the example
    relay DON, and a secrets request carries F+1 valid Workflow-DON signatures."""
    verifier = Verifier(TrustRoots.development(chain.root_pem))
    trusted = MeasurementIndex.from_sets([chain.trusted()])
    relay = [dev_peer_id(f"node-{i}") for i in range(4)]
    workflow = [dev_peer_id(f"wf-{i}") for i in range(4)]
    for i, body in enumerate(bench_current.mint_requests(chain, 4, "t")):
        request = json.loads(body)
        bound = binding.bind_current(request["method"], json.dumps(request["params"]).encode())
        verifier.verify(
            base64.b64decode(bound.attestation),
            now=time.time(),
            expected_user_data=bound.user_data,
            trusted=trusted,
        )
        params = bound.params
        assert isinstance(params, current.SecretsRequestParams | current.CapabilityRequestParams)
        enclave_config.check(params.enclave_config, 1, relay)
        if i % 2 == 0:
            assert isinstance(params, current.SecretsRequestParams)
            authorized = compute_request.authorize(params, workflow, 1)
            assert len(authorized.signers) == 2


def test_a_signed_answer_is_accepted_and_an_unsigned_one_is_not() -> None:
    """With signed=True the result must sit inside a signed object."""
    sent = json.dumps(
        {"jsonrpc": "2.0", "id": "r", "method": rpc.MethodCapabilityExec, "params": {}}
    ).encode()
    signed = (
        b'{"jsonrpc":"2.0","id":"r","result":{"result":{"payload":""},'
        b'"signature":{"signer":"AA==","signature":"AA=="}}}'
    )
    check_answer(sent, signed, signed=True)
    with pytest.raises(BenchFailed, match="no signature"):
        check_answer(sent, b'{"jsonrpc":"2.0","id":"r","result":{"payload":""}}', signed=True)


def test_step_costs_are_measured_for_every_added_step(chain: TestChain) -> None:
    """Every step has a positive median, and the secrets total adds them up."""
    costs = bench_current.step_costs(chain, samples=5)
    assert set(costs) == {
        "bind_n1_secrets_us",
        "bind_current_secrets_us",
        "enclave_config_check_us",
        "authorize_f_plus_1_us",
        "sign_secrets_us",
        "sign_capability_us",
        "secrets_added_us",
    }
    assert all(v > 0 for k, v in costs.items() if k != "secrets_added_us")
    assert costs["secrets_added_us"] == pytest.approx(
        costs["bind_current_secrets_us"]
        - costs["bind_n1_secrets_us"]
        + costs["enclave_config_check_us"]
        + costs["authorize_f_plus_1_us"]
        + costs["sign_secrets_us"],
        abs=0.2,
    )
