"""The relay protocol's pure rules: the attestation binding (DomainHash) and owner addresses.

Pure: no asyncio, no NATS, no clock. May import `schemas` and the standard library only; every
actor and the CLI import from here, never the other way round.
"""
