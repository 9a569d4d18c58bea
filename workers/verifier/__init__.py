"""The verifier actor: the Nitro attestation check as a NATS service, scaled by its queue group.

`actor.py` wires `workers.attestation` (the pure verifier) to `relay.v1.<don>.<node>.verify`.
May import `schemas`, the pure libraries and `runtime`.
"""
