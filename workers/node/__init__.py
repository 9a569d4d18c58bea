"""Assembling actors into a running relay: `process` (one node's actors, in one process or one
per process, and the embedded nats-server) and `demo` (the whole DON on one machine).

The top layer: may import every actor family; nothing but the CLI and benches imports it.
"""
