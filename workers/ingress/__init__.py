"""The ingress actor: one JSON-RPC request in, one Go-identical JSON-RPC response out.

`actor.py` holds the pure `Ingress.handle` and its NATS wiring. May import `schemas`, the pure
libraries, `runtime` and the registry client; no other actor imports it.
"""
