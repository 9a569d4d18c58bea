"""The relay: pure libraries, the actors built on them, the runtime they share, and the CLI.

Layers, each importing only from the ones before it (tests/unit/test_layers.py checks this):

1. `schemas` (beside this package): the wire contract.
2. Pure libraries, no NATS and no actor: `attestation` (Nitro verification), `protocol` (the
   request binding, owner rules).
3. `runtime`: the NATS service, settings, logs, telemetry every actor shares.
4. Actor families, one package each: `ingress`, `verifier`, `registry`, `dispatch`,
   `reference` (the reference Vault and echo DON workers), `gateway`.
5. Assembly and tools: `node` (a node's actors in processes, the demo), `cli`, `bench`.
"""
