"""Every NATS subject and queue group the relay uses, defined once.

Layout (version first, then the relay DON and node, then the stage), so that one node's
actors are permissioned by a single prefix and ops can tail a node with `relay.v1.<don>.<node>.>`:

    relay.v1.<don>.<node>.rpc                   gateway -> ingress (JSON-RPC request, reply = node response)
    relay.v1.<don>.<node>.verify                ingress -> verifier (request/reply)
    relay.v1.<don>.<node>.registry.<verb>       any actor -> registry (request/reply)
    relay.v1.<don>.<node>.dispatch.<method>     ingress -> per-method dispatch (request/reply)
    relay.v1.<don>.gateway                      enclave side -> gateway (request/reply)
    relay.v1.<don>.gateway.responses.<gw>.<node>.<ticket>   node responses to one gateway replica
    cap.v1.<capability>.<verb>                  dispatch -> capability DON bridge (request/reply)

Capability ids and method names contain `.` and `@`, which NATS treats as token separators or
discourages; `encode_token` maps any string to one token reversibly (see its docstring).
"""

from __future__ import annotations

import re

VERSION = "v1"
RELAY_ROOT = "relay"
CAPABILITY_ROOT = "cap"

_SAFE = re.compile(r"[A-Za-z0-9-]")


def encode_token(value: str) -> str:
    """Map any non-empty string to one NATS subject token, reversibly.

    Characters other than ASCII letters, digits and `-` become `_` followed by two lowercase
    hex digits per UTF-8 byte, so `vault@1.0.0` becomes `vault_401_2e0_2e0`. `_` itself is
    escaped, which keeps the mapping one-to-one.
    """
    if not value:
        raise ValueError("a subject token cannot be empty")
    out: list[str] = []
    for ch in value:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"_{b:02x}" for b in ch.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Invert `encode_token`; raises ValueError on a token it could not have produced."""
    raw = bytearray()
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "_":
            hex_pair = token[i + 1 : i + 3]
            if len(hex_pair) != 2 or not re.fullmatch(r"[0-9a-f]{2}", hex_pair):
                raise ValueError(f"bad escape in subject token {token!r}")
            raw.append(int(hex_pair, 16))
            i += 3
        elif _SAFE.fullmatch(ch):
            raw.extend(ch.encode("ascii"))
            i += 1
        else:
            raise ValueError(f"character {ch!r} cannot appear in an encoded token")
    decoded = raw.decode("utf-8")
    if encode_token(decoded) != token:
        raise ValueError(f"subject token {token!r} is not in canonical form")
    return decoded


def node_prefix(don: str, node: str) -> str:
    return f"{RELAY_ROOT}.{VERSION}.{encode_token(don)}.{encode_token(node)}"


def rpc(don: str, node: str) -> str:
    return f"{node_prefix(don, node)}.rpc"


def verify(don: str, node: str) -> str:
    return f"{node_prefix(don, node)}.verify"


def registry(don: str, node: str, verb: str) -> str:
    return f"{node_prefix(don, node)}.registry.{encode_token(verb)}"


def registry_wildcard(don: str, node: str) -> str:
    return f"{node_prefix(don, node)}.registry.>"


def dispatch(don: str, node: str, method: str) -> str:
    return f"{node_prefix(don, node)}.dispatch.{encode_token(method)}"


def gateway(don: str) -> str:
    return f"{RELAY_ROOT}.{VERSION}.{encode_token(don)}.gateway"


def gateway_responses(don: str) -> str:
    return f"{gateway(don)}.responses"


def gateway_reply(don: str, instance: str, node: str, ticket: int) -> str:
    """The reply subject of one fan-out send: the gateway replica, the node, the request's ticket.

    The node token lets the gateway know who answered without trusting the body; with
    `allow_responses` permissions a node can only publish to reply subjects it was sent.
    """
    return f"{gateway_responses(don)}.{encode_token(instance)}.{encode_token(node)}.{ticket}"


def gateway_replies(don: str, instance: str) -> str:
    """Everything one gateway replica receives from nodes (its own subscription, no queue)."""
    return f"{gateway_responses(don)}.{encode_token(instance)}.>"


EMPTY_VERB_TOKEN = "_"
"""The token of an empty capability method: `_` alone, which `encode_token` never produces."""


def capability(capability_id: str, verb: str) -> str:
    """`cap.v1.<capability>.<method>`. An enclave may name no method at all (Go passes "" on to
    the capability, which decides); it still gets a subject, so it is refused like any method
    nobody serves, not as a malformed request."""
    verb_token = encode_token(verb) if verb else EMPTY_VERB_TOKEN
    return f"{CAPABILITY_ROOT}.{VERSION}.{encode_token(capability_id)}.{verb_token}"


# Queue groups: one per actor kind, so replicas of an actor share the work.
QUEUE_INGRESS = "ingress"
QUEUE_VERIFIER = "verifiers"
QUEUE_REGISTRY = "registry"
QUEUE_DISPATCH_PREFIX = "dispatch"
QUEUE_GATEWAY = "gateway"
QUEUE_CAPABILITY = "capability"


def dispatch_queue(method: str) -> str:
    return f"{QUEUE_DISPATCH_PREFIX}-{encode_token(method)}"


# Per-actor reply inboxes keep each requester's reply subscription narrow (see nats.conf).
def inbox_prefix(actor: str) -> str:
    return f"_INBOX_{encode_token(actor)}"


# The JetStream KV bucket that is the registry's source of truth.
REGISTRY_BUCKET = "relay_registry"
