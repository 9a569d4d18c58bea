"""The per-method dispatch actors and what they share.

- `secrets`: `confidential.secrets.get` to the Vault DON; `capability`: `confidential.capability.execute`.
- `common`: the registry and capability clients, error helpers both use.
- `dedupe` / `dedupe_shared`: one logical capability call runs once, per process or per node.
- `goproto`: re-exports `workers.protocol.goproto` (protobuf-go's verdict and error text).

May import `schemas`, the pure libraries, `runtime` and `workers.registry.client`.
"""
