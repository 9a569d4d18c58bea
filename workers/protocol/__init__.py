"""The relay protocol's pure rules: the attestation binding (DomainHash v1/v2), owner addresses,
and the current protocol's signed responses, EnclaveConfig and Workflow-DON authorization
(`signed`, `enclave_config`, `compute_request`; API in docs/protocol-current.md).

Pure: no asyncio, no NATS, no clock. May import `schemas` and the standard library only; every
actor and the CLI import from here, never the other way round.
"""
