"""The simulated Workflow DON's signed compute requests pass the relay's own authorization."""

from __future__ import annotations

import pytest

from schemas import current, rpc
from workers.enclave.workflow_sim import signed_compute_requests
from workers.protocol import compute_request
from workers.protocol.signed import NodeKey

KEYS = [NodeKey(bytes([0x40 + i]) * 32) for i in range(4)]
OWNER = "0xAb5801a7D398351b8bE11C439e05C5B3259aeC9B"


def params(owner: str = OWNER, count: int = 2) -> current.SecretsRequestParams:
    return current.SecretsRequestParams(
        workflow_id="wf",
        owner=owner,
        execution_id="00" * 32,
        secrets=(rpc.SecretIdentifier(key="API_KEY", namespace="main"),),
        enclave_public_key="ab" * 32,
        signed_compute_requests=signed_compute_requests(
            KEYS[:count],
            workflow_id="wf",
            owner=OWNER,
            execution_id="00" * 32,
            secret_keys=["API_KEY"],
        ),
    )


def test_f_plus_1_simulated_signers_are_authorized_for_their_workflow_and_owner() -> None:
    """Two of four Workflow-DON keys (F=1) sign: the relay's check credits both."""
    authorized = compute_request.authorize(params(), [k.public_key for k in KEYS], 1)
    assert authorized.signers == (KEYS[0].public_key, KEYS[1].public_key)
    assert (authorized.signed_owner, authorized.signed_workflow_id) == (OWNER, "wf")


def test_too_few_signers_or_another_owner_are_refused() -> None:
    """One signer is not F+1; a request for another owner is not authorised."""
    members = [k.public_key for k in KEYS]
    with pytest.raises(compute_request.AuthorizationError, match="1 unique signers, need 2"):
        compute_request.authorize(params(count=1), members, 1)
    with pytest.raises(compute_request.AuthorizationError, match="owner not authorized"):
        compute_request.authorize(params(owner="0x" + "11" * 20), members, 1)
