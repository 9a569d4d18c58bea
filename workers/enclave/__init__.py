"""The enclave-side client library of the confidential relay (docs/enclave-client.md).

Pure (no NATS, no event loop) except `workers.enclave.nats_transport`: build and bind the
requests, attest them (`/dev/nsm` or a simulated chain), send them over HTTP (or NATS), check
the answer and open the reference vault's shares.
"""
