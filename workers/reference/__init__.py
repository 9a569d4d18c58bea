"""Reference DON workers for demos and tests: a Vault DON (`vault`), an echo capability (`echo`).

`enclave_crypto` is their share-encryption scheme with the enclave (documented in its
docstring). They stand in for other DONs: no relay actor imports
them; only `workers.node`, the CLI and the benches do.
"""
