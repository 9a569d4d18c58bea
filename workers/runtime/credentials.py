"""NATS credentials per actor: the dev users of `nats.conf`, overridable from the environment.

Every party has NATS users of its own, in an account of its own (docs/deployment.md): each node
operator (its actors and an `ops` user), the gateway, each capability DON. A dev user is named
after its party and actor (`node-1-verifier`, `gateway-ops`; the gateway's, vault's and echo's
own workers are just `gateway`, `vault`, `echo`, an enclave client `enclave`), its password is
`<user>-dev-password`
(`dev_user`, `dev_password`; `relay nats-config --dev` writes the same).

`RELAY_NATS_USER_<ACTOR>` / `RELAY_NATS_PASSWORD_<ACTOR>` (actor upper-cased, `-` as `_`)
override the dev defaults; `RELAY_NATS_NO_AUTH=1` connects without credentials (a server
without users). Passwords are never logged. Production uses nkeys or JWTs instead (see
docs/security.md); these dev passwords only protect a loopback test server.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    "enclave",  # a client of the gateway's NATS front, not an actor (docs/enclave-client.md)
)


def redact_url(url: str) -> str:
    """The NATS URL(s) fit for a log or an error: any password (or token) in them masked.

    nats-py takes `nats://user:password@host:port`, and the relay a comma-separated list of those
    (`workers/runtime/servers.py`), so
    an operator's URL may carry a secret; everything we print or log names it through this.
    """
    return ",".join(_redact_one(part) for part in url.split(","))


def _redact_one(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        # nats-py takes `user:password@host:port` without a scheme too (as nats://).
        shown = _redact_one("nats://" + url)
        return shown.removeprefix("nats://")
    try:
        parts = urlsplit(url)
    except ValueError:
        return "[unparsable NATS URL]"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    # A lone userinfo is a token (nats://token@host): as secret as a password.
    masked = f"{user}:***" if has_password else "***"
    return urlunsplit(parts._replace(netloc=f"{masked}@{hostport}"))


SELF_NAMED = ("gateway", "vault", "echo", "enclave")
"""Actors that are a party of their own (their account is theirs); every other actor belongs to
a node operator's account, or (ops, registry-admin) to whichever party it serves."""

DEFAULT_NODE = "node-0"


def default_party(actor: str) -> str:
    """Whose user `actor` is when nobody says: itself for the gateway and the capability
    workers, else the node this process serves (`RELAY_NODE`, node-0 by default)."""
    if actor in SELF_NAMED:
        return actor
    return os.environ.get("RELAY_NODE") or DEFAULT_NODE


def dev_user(actor: str, party: str) -> str:
    """The dev user name of `actor` in `party`'s account (nats.conf, `relay nats-config --dev`)."""
    return actor if actor == party or actor in SELF_NAMED else f"{party}-{actor}"


def dev_password(user: str) -> str:
    return user + _DEV_PASSWORD_SUFFIX


def credentials_for(actor: str, party: str | None = None) -> tuple[str | None, str | None]:
    """(user, password) for an actor of `party` (a node, `gateway`, `vault`, `echo`; see
    `default_party`); (None, None) when auth is switched off."""
    if os.environ.get("RELAY_NATS_NO_AUTH", "") in {"1", "true", "yes"}:
        return None, None
    env = actor.upper().replace("-", "_")
    default = dev_user(actor, party or default_party(actor))
    user = os.environ.get(f"RELAY_NATS_USER_{env}", default)
    password = os.environ.get(f"RELAY_NATS_PASSWORD_{env}", dev_password(default))
    return user, password


def _env_name(actor: str) -> str:
    return actor.upper().replace("-", "_")


class CredentialsError(ValueError):
    """A credentials or TLS file named in the environment is missing or unusable."""


def _existing(variable: str, path: str) -> str:
    if not Path(path).is_file():
        raise CredentialsError(f"{variable} names {path!r}, which is not a readable file")
    return path


def production_options(actor: str) -> dict[str, Any]:
    """nats-py connect options for production identities and TLS, from the environment.

    - `RELAY_NATS_CREDS_<ACTOR>`: a `.creds` file (user JWT + nkey seed, operator mode, `nsc`);
    - `RELAY_NATS_NKEY_SEED_<ACTOR>`: an nkey seed file (`nkey: U...` users in the server config);
    - `RELAY_NATS_TLS_CA`: the CA that signed the servers' certificates (verify them);
      `RELAY_NATS_TLS_CERT` and `RELAY_NATS_TLS_KEY`: this host's client certificate (mTLS).

    Either identity replaces the user/password pair. Paths only: neither seeds nor keys ever go
    through an environment variable's value, so they cannot end up in a process listing or a log.
    """
    env = _env_name(actor)
    options: dict[str, Any] = {}
    creds = os.environ.get(f"RELAY_NATS_CREDS_{env}")
    seed = os.environ.get(f"RELAY_NATS_NKEY_SEED_{env}")
    if creds and seed:
        raise CredentialsError(
            f"set RELAY_NATS_CREDS_{env} or RELAY_NATS_NKEY_SEED_{env}, not both"
        )
    if creds:
        options["user_credentials"] = _existing(f"RELAY_NATS_CREDS_{env}", creds)
    elif seed:
        options["nkeys_seed"] = _existing(f"RELAY_NATS_NKEY_SEED_{env}", seed)
    ca, cert, key = (os.environ.get(f"RELAY_NATS_TLS_{part}") for part in ("CA", "CERT", "KEY"))
    if bool(cert) != bool(key):
        raise CredentialsError("RELAY_NATS_TLS_CERT and RELAY_NATS_TLS_KEY go together")
    if ca or cert:
        context = ssl.create_default_context(
            cafile=_existing("RELAY_NATS_TLS_CA", ca) if ca else None
        )
        if cert and key:
            context.load_cert_chain(
                _existing("RELAY_NATS_TLS_CERT", cert), _existing("RELAY_NATS_TLS_KEY", key)
            )
        options["tls"] = context
    return options
