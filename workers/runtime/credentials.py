"""NATS credentials per actor: the dev users of `nats.conf`, overridable from the environment.

`RELAY_NATS_USER_<ACTOR>` / `RELAY_NATS_PASSWORD_<ACTOR>` (actor upper-cased, `-` as `_`)
override the dev defaults; `RELAY_NATS_NO_AUTH=1` connects without credentials (a server
without users). Passwords are never logged. Production uses nkeys or JWTs instead (see
docs/security.md); these dev passwords only protect a loopback test server.
"""

from __future__ import annotations

import os

_DEV_PASSWORD_SUFFIX = "-dev-password"

ACTORS = (
    "gateway",
    "ingress",
    "verifier",
    "registry",
    "registry-admin",
    "dispatch-secrets",
    "dispatch-capability",
    "vault",
    "echo",
    "ops",
)


def credentials_for(actor: str) -> tuple[str | None, str | None]:
    """(user, password) for an actor; (None, None) when auth is switched off."""
    if os.environ.get("RELAY_NATS_NO_AUTH", "") in {"1", "true", "yes"}:
        return None, None
    env = actor.upper().replace("-", "_")
    user = os.environ.get(f"RELAY_NATS_USER_{env}", actor)
    password = os.environ.get(f"RELAY_NATS_PASSWORD_{env}", actor + _DEV_PASSWORD_SUFFIX)
    return user, password
