"""The NATS permissions of every relay user, per party: what each one may publish and subscribe.

One node operator's account holds that node's actors only, and every grant names that node's
own subjects (`relay.v1.<don>.<node>.…`): nothing else reaches the account anyway (the gateway
imports only the node's rpc service), and a grant that could name another node would be an
error waiting for a layout change. Pure data: `natsconf.py` renders it, the tests read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas import rpc, subjects
from workers.deploy.topology import ALL_METHODS, Capability

REGISTRY_STREAM = f"KV_{subjects.REGISTRY_BUCKET}"
DEDUPE_BUCKET = "relay_dedupe"  # workers/dispatch/dedupe_shared.py BUCKET (a test pins it)
DEDUPE_STREAM = f"KV_{DEDUPE_BUCKET}"
MEMO_BUCKET = "relay_memo"  # workers/ingress/memo_shared.py: the shared N4 response memo
DEFAULT_API = "$JS.API"

NODE_ACTORS = (
    "ingress",
    "verifier",
    "registry",
    "registry-admin",
    "dispatch-secrets",
    "dispatch-capability",
    "ops",
)
GATEWAY_ACTORS = ("gateway", "enclave", "registry-admin", "ops")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """One user's permissions block, and why it exists (a comment in the config)."""

    actor: str
    why: str
    publish_allow: tuple[str, ...] = ()
    publish_deny: tuple[str, ...] = ()
    subscribe_allow: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()
    allow_responses: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def permissions(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, allow, deny in (
            ("publish", self.publish_allow, self.publish_deny),
            ("subscribe", self.subscribe_allow, self.subscribe_deny),
        ):
            block: dict[str, Any] = {}
            if allow:
                block["allow"] = list(allow)
            if deny:
                block["deny"] = list(deny)
            if block:
                out[key] = block
        if self.allow_responses:
            out["allow_responses"] = True
        return out


def api_prefixes(domain: str) -> tuple[str, ...]:
    """The JetStream API prefixes a user needs: the local one, and the domain's when the
    buckets live in another JetStream domain (a leaf reading its hub's registry)."""
    return (DEFAULT_API, f"$JS.{domain}.API") if domain else (DEFAULT_API,)


def kv_reader(stream: str, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """A read-only KV watch (RegistryCache, membership): measured with nats-py 2.16 (nats.conf)."""
    grants: list[str] = []
    for p in prefixes:
        grants += [f"{p}.STREAM.INFO.{stream}", f"{p}.CONSUMER.CREATE.{stream}"]
        grants += [f"{p}.CONSUMER.INFO.{stream}.*"]
    return (*grants, f"$JS.FC.{stream}.>")


def registry_admin(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    creating = tuple(
        f"{p}.STREAM.{verb}.{REGISTRY_STREAM}" for p in prefixes for verb in ("CREATE", "UPDATE")
    )
    return (
        *kv_reader(REGISTRY_STREAM, prefixes),
        *creating,
        *kv_writes(subjects.REGISTRY_BUCKET, prefixes),
    )


def kv_writes(bucket: str, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Puts and deletes: `$KV.<bucket>.>` locally; into another domain's bucket they go to
    `$JS.<domain>.API.$KV.<bucket>.>` (workers/runtime/jetstream.py, as nats.go does)."""
    return tuple(f"$KV.{bucket}.>" if p == DEFAULT_API else f"{p}.$KV.{bucket}.>" for p in prefixes)


def bucket_user(bucket: str, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    """Create, get and put in one bucket of the relay's own (RELAY_DEDUPE=shared)."""
    stream = f"KV_{bucket}"
    grants = []
    for p in prefixes:
        grants += [f"{p}.STREAM.INFO.{stream}", f"{p}.STREAM.CREATE.{stream}"]
        grants += [f"{p}.DIRECT.GET.{stream}.>", f"{p}.STREAM.MSG.GET.{stream}"]
    return (*grants, *kv_writes(bucket, prefixes))


def dedupe_user(prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return bucket_user(DEDUPE_BUCKET, prefixes)


def discovery(service: str) -> tuple[str, ...]:
    """nats.micro's discovery subjects of one service (answered through allow_responses)."""
    return ("$SRV.*", f"$SRV.*.{service}", f"$SRV.*.{service}.*")


def capability_subjects(cap: Capability) -> tuple[str, ...]:
    """The `cap.v1` subjects a capability DON serves: one per method, or all of them."""
    token = subjects.encode_token(cap.id)
    if ALL_METHODS in cap.methods:
        return (f"cap.v1.{token}.*",)
    return tuple(subjects.capability(cap.id, m) for m in cap.methods)


def _ops(account: str) -> Grant:
    return Grant(
        actor="ops",
        why=(
            f"ops of {account}: read-only. Tails relay.> and cap.> as this account sees them "
            "and asks $SRV discovery; may publish nothing into relay.> or cap.> and join no queue"
        ),
        publish_allow=("$SRV.>",),
        publish_deny=("relay.>", "cap.>"),
        subscribe_allow=("relay.>", "cap.>", f"{subjects.inbox_prefix('ops')}.>"),
        # `"subject *"` denies every queue group on those subjects; plain subscriptions stay.
        subscribe_deny=("relay.> *", "cap.> *"),
    )


def node_grants(
    don: str, node: str, capabilities: tuple[Capability, ...], domain: str = ""
) -> tuple[Grant, ...]:
    """The users of one node operator's account, each limited to this node's own subjects."""
    p = api_prefixes(domain)
    reader = kv_reader(REGISTRY_STREAM, p)
    secrets, execute = rpc.MethodSecretsGet, rpc.MethodCapabilityExec
    vault = tuple(
        s for c in capabilities if c.id == rpc.VaultCapabilityID for s in capability_subjects(c)
    )
    # The capability dispatcher calls whatever capability the attested request names, among
    # those this account imports (the vault is the secrets dispatcher's alone).
    others = tuple(
        s for c in capabilities if c.id != rpc.VaultCapabilityID for s in capability_subjects(c)
    )
    inbox = subjects.inbox_prefix
    return (
        Grant(
            actor="ingress",
            why="serves the node's JSON-RPC subject (exported to the gateway) and calls its stages",
            publish_allow=(
                subjects.verify(don, node),
                subjects.dispatch(don, node, secrets),
                subjects.dispatch(don, node, execute),
                subjects.registry(don, node, "measurements"),
                # RELAY_PROTOCOL=current: the relay DON's trust (F, signers) from the registry
                subjects.registry(don, node, "trust"),
                *reader,
                # RELAY_PROTOCOL=current with RELAY_DEDUPE=shared: the shared response memo
                *bucket_user(MEMO_BUCKET, p),
            ),
            subscribe_allow=(
                f"{subjects.rpc(don, node)} {subjects.QUEUE_INGRESS}",
                f"{inbox('ingress')}.>",
                *discovery("relay-ingress"),
            ),
            allow_responses=True,
        ),
        Grant(
            actor="verifier",
            why="a pure responder (Nitro attestation): no requests of its own, no JetStream",
            publish_deny=(">",),
            subscribe_allow=(
                f"{subjects.verify(don, node)} {subjects.QUEUE_VERIFIER}",
                *discovery("relay-verifier"),
            ),
            allow_responses=True,
        ),
        Grant(
            actor="registry",
            why="watches the node's registry bucket (read-only) and answers lookups",
            publish_allow=reader,
            subscribe_allow=(
                f"{subjects.node_prefix(don, node)}.registry.* {subjects.QUEUE_REGISTRY}",
                f"{inbox('registry')}.>",
                *discovery("relay-registry"),
            ),
            allow_responses=True,
        ),
        Grant(
            actor="registry-admin",
            why="`relay registry load/show`: the only writer of this node's registry bucket",
            publish_allow=registry_admin(p),
            subscribe_allow=(f"{inbox('registry-admin')}.>",),
        ),
        Grant(
            actor="dispatch-secrets",
            why="serves dispatch.confidential.secrets.get and calls the Vault DON (imported)",
            publish_allow=(
                *vault,
                subjects.registry(don, node, "capability"),
                subjects.registry(don, node, "local-node"),
                *reader,
            ),
            subscribe_allow=(
                f"{subjects.dispatch(don, node, secrets)} {subjects.dispatch_queue(secrets)}",
                f"{inbox('dispatch-secrets')}.>",
                *discovery("relay-dispatch-secrets"),
            ),
            allow_responses=True,
        ),
        Grant(
            actor="dispatch-capability",
            why="serves dispatch.confidential.capability.execute; calls the imported capabilities",
            publish_allow=(
                *others,
                *dedupe_user(p),
                subjects.registry(don, node, "capability"),
                *reader,
            ),
            subscribe_allow=(
                f"{subjects.dispatch(don, node, execute)} {subjects.dispatch_queue(execute)}",
                f"{inbox('dispatch-capability')}.>",
                *discovery("relay-dispatch-capability"),
            ),
            allow_responses=True,
        ),
        _ops(node),
    )


def gateway_grants(don: str, nodes: tuple[str, ...], domain: str = "") -> tuple[Grant, ...]:
    p = api_prefixes(domain)
    return (
        Grant(
            actor="gateway",
            why=(
                "fans each request out to the nodes' rpc services (imported, one per node), "
                "reads the DON's members from its own registry bucket, serves enclaves over NATS"
            ),
            publish_allow=(
                *(subjects.rpc(don, n) for n in nodes),
                *kv_reader(REGISTRY_STREAM, p),
            ),
            subscribe_allow=(
                f"{subjects.gateway_responses(don)}.>",
                f"{subjects.gateway(don)} {subjects.QUEUE_GATEWAY}",
                f"{subjects.inbox_prefix('gateway')}.>",
                *discovery("relay-gateway"),
            ),
            allow_responses=True,
        ),
        Grant(
            actor="enclave",
            why=(
                "an enclave client on the gateway's NATS front (docs/enclave-client.md): requests "
                "to the gateway, answers in its own inbox, nothing else. Every holder reads every "
                "answer in its inbox: one such user per enclave in production"
            ),
            publish_allow=(subjects.gateway(don),),
            subscribe_allow=(f"{subjects.inbox_prefix('enclave')}.>",),
        ),
        Grant(
            actor="registry-admin",
            why="writes the gateway's registry bucket (DON membership)",
            publish_allow=registry_admin(p),
            subscribe_allow=(f"{subjects.inbox_prefix('registry-admin')}.>",),
        ),
        _ops("the gateway"),
    )


REFERENCE_SERVICES = {"vault": "relay-ref-vault", "echo": "relay-ref-echo"}


def capability_grants(cap: Capability) -> tuple[Grant, ...]:
    service = REFERENCE_SERVICES.get(cap.account, f"relay-ref-{cap.account}")
    return (
        Grant(
            actor=cap.account,
            why=f"the {cap.id} worker: a pure responder on its exported cap.v1 subjects",
            publish_deny=(">",),
            subscribe_allow=(
                *(f"{s} {subjects.QUEUE_CAPABILITY}" for s in capability_subjects(cap)),
                *discovery(service),
            ),
            allow_responses=True,
        ),
        _ops(cap.account),
    )
