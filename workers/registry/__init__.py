"""The capabilities registry: its actor and everything that reads or writes the KV bucket.

- `view`: the key layout and the immutable view built from the bucket (pure).
- `store`: seed files and bucket I/O (`relay registry load/show`, `relay up`, the demo).
- `actor`: the watched, read-write-locked cache and the registry actor's lookups.
- `client`: lookups for other actors, in process or over NATS.
- `devseed`: seeds for development, tests and the demo.

May import `schemas`, the pure libraries and `runtime`; other actors use `client` (or the
cache in `actor`), never the bucket directly.
"""
