"""A simulated Workflow DON for development: the signed compute requests a current enclave
forwards with every `confidential.secrets.get` (PROTOCOL 10.8).

In production the Workflow DON's nodes sign the compute request they ask the enclave to run and
hand the signatures to the enclave; here development keys (for example the example registry's
`workers.registry.devseed.dev_node_seed("wf-<i>")`, whose peer ids the seed registers) sign a
request shaped as upstream's executor builds it: `requestID` = SHA-256 of the execution id,
`applicationRequestID` = the execution id, `publicData` = a WorkflowExecution naming the
workflow, owner and execution, `CiphertextNames` = the secret keys, `appID` = the confidential workflows capability id,
version `0.0.6`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import msgspec

from schemas import current, rpc
from workers.enclave.pb import len_field
from workers.protocol.compute_request import (
    LEGACY_VERSION,
    compute_request_hash,
    compute_request_payload,
)
from workers.protocol.signed import NodeKey

# WorkflowExecution (capabilities.v2.actions.confidentialworkflow) field numbers.
_WORKFLOW_ID, _OWNER, _EXECUTION_ID = 1, 5, 6


def workflow_execution(*, workflow_id: str, owner: str, execution_id: str) -> bytes:
    """The WorkflowExecution protobuf with the three fields the relay and the enclave read."""
    return (
        len_field(_WORKFLOW_ID, workflow_id.encode())
        + len_field(_OWNER, owner.encode())
        + len_field(_EXECUTION_ID, execution_id.encode())
    )


def signed_compute_requests(
    keys: Sequence[NodeKey],
    *,
    workflow_id: str,
    owner: str,
    execution_id: str,
    secret_keys: Sequence[str],
    app_id: str = rpc.ConfidentialWorkflowsCapabilityID,
) -> tuple[current.SignedComputeRequest, ...]:
    """One compute request, signed by each key (one entry per signer)."""
    request = current.SignedComputeRequest(
        request_id=hashlib.sha256(execution_id.encode()).digest(),
        application_request_id=execution_id,
        public_data=workflow_execution(
            workflow_id=workflow_id, owner=owner, execution_id=execution_id
        ),
        ciphertext_names=tuple(secret_keys),
        app_id=app_id,
        version=LEGACY_VERSION,
    )
    payload = compute_request_payload(compute_request_hash(request))
    return tuple(msgspec.structs.replace(request, signature=key.sign(payload)) for key in keys)
