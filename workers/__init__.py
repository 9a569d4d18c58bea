"""The relay's actors, its attestation library, its runtime and its command line."""
