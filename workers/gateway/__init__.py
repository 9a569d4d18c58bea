"""The gateway: the enclave-facing side that fans requests out to a relay DON and answers on F+1."""
