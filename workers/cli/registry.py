"""`relay registry load FILE` / `relay registry show`: the registry's KV bucket, for operators.

`load` validates a seed file exactly as the registry actor validates the bucket, then makes the
bucket match it (creating the bucket if needed; unchanged keys are not rewritten). Running
registry actors pick the change up within a second. `show` prints the view the actors build from
the bucket, with the lookups they would answer; `show --json` prints it as a seed file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client

from schemas import bus, subjects
from workers.cli.args import env_servers, js_domain, nats_servers_arg, party_arg, positive_int
from workers.registry import actor as registry
from workers.registry.store import LoadResult, load_entries, read_seed_file, read_view, to_seed
from workers.registry.view import RegistryDataError, RegistryView
from workers.runtime import jetstream
from workers.runtime.bus import NatsConnectError, connect
from workers.runtime.credentials import credentials_for, redact_url
from workers.runtime.jetstream import env_domain, env_replicas

EXIT_OK = 0
EXIT_UNREACHABLE = 1
EXIT_BAD_DATA = 2


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("registry", help="load or show the capabilities registry (KV bucket)")
    cmds = p.add_subparsers(dest="registry_command", required=True)

    load = cmds.add_parser("load", help="write a seed file into the registry bucket")
    load.add_argument("file", type=Path, help="seed file (JSON; see docs/registry.md)")
    load.add_argument(
        "--keep-others",
        action="store_true",
        help="do not delete registry keys the file does not mention",
    )
    load.add_argument(
        "--replicas",
        type=positive_int,
        default=None,
        help="replicas of the bucket's stream: 1 on a single server, 3 on a cluster; applied"
        " to a new bucket and changed on an existing one (default: $RELAY_KV_REPLICAS, else 1"
        " for a new bucket and unchanged for an existing one)",
    )
    _connection_args(load)
    load.set_defaults(func=run_load)

    show = cmds.add_parser("show", help="print the registry view the relay serves")
    show.add_argument("--json", action="store_true", help="print the view as a seed file")
    _connection_args(show)
    show.set_defaults(func=run_show)


def _connection_args(p: argparse.ArgumentParser) -> None:
    nats_servers_arg(p, default=env_servers())
    p.add_argument(
        "--js-domain",
        type=js_domain,
        default=None,
        help="JetStream domain of the registry bucket (default: $RELAY_JS_DOMAIN, else the"
        " server's own)",
    )
    p.add_argument("--user", default=os.environ.get("RELAY_NATS_USER"))
    p.add_argument("--password", default=os.environ.get("RELAY_NATS_PASSWORD"))
    p.add_argument("--bucket", default=subjects.REGISTRY_BUCKET, help=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to reach NATS")
    party_arg(p)


def _problems(exc: RegistryDataError, out: TextIO) -> None:
    for problem in exc.problems:
        print(f"  - {problem}", file=out)


# Transport failures: connection refused, timeouts, JetStream unavailable.
_UNREACHABLE = (nats.errors.Error, OSError, TimeoutError)


def _resolve_domain(args: argparse.Namespace) -> bool:
    """--js-domain, else $RELAY_JS_DOMAIN (checked here: a bad one is a line, not a traceback)."""
    try:
        args.js_domain = _domain(args)
        if getattr(args, "replicas", None) is None and hasattr(args, "replicas"):
            args.replicas = _replicas(args)
    except ValueError as exc:
        print(f"relay registry: {exc}", file=sys.stderr)
        return False
    return True


def run_load(args: argparse.Namespace) -> int:
    if not _resolve_domain(args):
        return EXIT_BAD_DATA
    try:
        entries = read_seed_file(args.file)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    except RegistryDataError as exc:
        print(f"{args.file} is not a valid registry seed:", file=sys.stderr)
        _problems(exc, sys.stderr)
        return EXIT_BAD_DATA
    try:
        result = asyncio.run(_load(args, entries))
    except _UNREACHABLE as exc:
        print(
            f"cannot load the registry via {redact_url(args.nats)}: {_describe(exc)}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    created = " (created the bucket)" if result.created_bucket else ""
    if result.changed_replicas:
        created += f" (now {result.replicas} replicas)"
    print(
        f"loaded {args.file} into KV bucket {args.bucket}{created}: {len(result.put)} written, "
        f"{len(result.deleted)} deleted, {result.unchanged} unchanged; revision {result.revision}"
    )
    return EXIT_OK


async def _load(args: argparse.Namespace, entries: dict[str, bytes]) -> LoadResult:
    nc = await _connect(args)
    try:
        return await load_entries(
            nc,
            entries,
            bucket=args.bucket,
            prune=not args.keep_others,
            domain=_domain(args),
            replicas=_replicas(args),
        )
    finally:
        await nc.close()


def run_show(args: argparse.Namespace) -> int:
    if not _resolve_domain(args):
        return EXIT_BAD_DATA
    try:
        view = asyncio.run(_show(args))
    except RegistryDataError as exc:
        print(f"KV bucket {args.bucket} holds data the registry rejects:", file=sys.stderr)
        _problems(exc, sys.stderr)
        return EXIT_BAD_DATA
    except _UNREACHABLE as exc:
        print(
            f"cannot read the registry via {redact_url(args.nats)}: {_describe(exc)}",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(to_seed(view), indent=2))
    else:
        print(render(view, bucket=args.bucket), end="")
    return EXIT_OK


async def _show(args: argparse.Namespace) -> RegistryView:
    nc = await _connect(args)
    try:
        return await read_view(nc, bucket=args.bucket, domain=_domain(args))
    finally:
        await nc.close()


def _domain(args: argparse.Namespace) -> str | None:
    return args.js_domain if args.js_domain else env_domain()


def _replicas(args: argparse.Namespace) -> int | None:
    if args.replicas is not None:
        return int(args.replicas)
    return env_replicas() if os.environ.get("RELAY_KV_REPLICAS", "").strip() else None


async def _connect(args: argparse.Namespace) -> Client:
    """Connect once, bounded: the shared connect retries forever, which suits actors, not a CLI."""
    bus_log = logging.getLogger("relay.bus")
    level = bus_log.level
    bus_log.setLevel(logging.CRITICAL)  # one clear message below instead of one per retry
    # --user/--password (or RELAY_NATS_USER/_PASSWORD) win; else registry-admin's own user.
    user, password = (
        (args.user, args.password) if args.user else credentials_for("registry-admin", args.party)
    )
    try:
        return await connect(
            args.nats,
            actor="registry-admin",
            user=user,
            password=password,
            connect_timeout_s=args.timeout,
            initial_timeout_s=args.timeout,
        )
    finally:
        bus_log.setLevel(level)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, NatsConnectError):
        if exc.refusal is not None:
            return f"NATS refused the connection: {exc.refusal}"
        return "no NATS server answered"
    if isinstance(exc, nats.js.errors.BucketNotFoundError):
        return "the registry bucket does not exist (run `relay registry load FILE` first)"
    # Connected by now: a timeout is JetStream's silence, not the server's.
    return jetstream.describe(exc)


def _lookup(reply: msgspec.Struct) -> str:
    if isinstance(reply, bus.StageError):
        return f"FAILS: {reply.detail}"
    if isinstance(reply, bus.Measurements):
        pem = "a CA PEM" if reply.ca_roots_pem else "the AWS root"
        return f"{len(reply.trusted_values)} trusted value(s), {pem}"
    if isinstance(reply, bus.LocalNode):
        return (
            f"workflow DON {reply.workflow_don_id} "
            f"config version {reply.workflow_don_config_version}"
        )
    if isinstance(reply, bus.CapabilityInfo):
        return f"DON {reply.don_id}"
    if isinstance(reply, bus.Trust):
        need = reply.workflow_f * (2 if reply.require_bft_quorum else 1) + 1
        return (
            f"signs as {_short(reply.own_peer_id)}; EnclaveConfig: F>={reply.relay_f},"
            f" {len(reply.relay_signers)} signers; compute requests: {need} of"
            f" {len(reply.workflow_members)} Workflow-DON members"
        )
    return repr(reply)


def render(view: RegistryView, *, bucket: str = subjects.REGISTRY_BUCKET) -> str:
    """The human-readable view: DONs, their capabilities, nodes, and the lookups they yield."""
    lines = [f"registry: KV bucket {bucket}, revision {view.revision}"]
    for d in view.dons.values():
        flags = " accepts-workflows" if d.accepts_workflows else ""
        flags += " require-bft-quorum" if d.require_bft_quorum else ""
        lines.append(
            f"DON {d.id} {d.name!r}: F={d.f}, config version {d.config_version}{flags}, "
            f"{len(d.members)} members: {', '.join(d.members)}"
        )
        if d.peer_ids:
            ids = ", ".join(f"{m} {_short(p)}" for m, p in zip(d.members, d.peer_ids, strict=True))
            lines.append(f"  peer ids: {ids}")
        for cap in d.capabilities:
            config = view.configs.get((d.id, cap))
            if config is None:
                state = "no config"
            elif not config.has_default:
                state = "config null (no default config)"
            elif config.enclaves is not None and config.enclaves.enclave_count:
                state = (
                    f"{config.enclaves.enclave_count} enclave(s), "
                    f"{len(config.enclaves.trusted_values)} trusted value(s)"
                )
            else:
                state = f"config {len(config.raw)} bytes"
            lines.append(f"  hosts {cap}: {state}")
    orphans = sorted(
        f"{cap} on DON {don_id}"
        for (don_id, cap) in view.configs
        if don_id not in view.dons or cap not in view.dons[don_id].capabilities
    )
    if orphans:
        lines.append(f"configs not listed by their DON: {', '.join(orphans)}")
    for address, node in sorted(view.nodes.items()):
        lines.append(f"node {address}: workflow DON {node.workflow_don_id}")
    if view.ignored_keys:
        lines.append(f"ignored keys: {', '.join(view.ignored_keys)}")
    lines.append(
        f"lookup measurements ({registry.CONFIDENTIAL_WORKFLOWS}): "
        f"{_lookup(registry.measurements(view))}"
    )
    for cap in sorted(view.hosting):
        lines.append(f"lookup capability {cap}: {_lookup(registry.capability(view, cap))}")
    for address in sorted(view.nodes):
        lines.append(f"lookup local-node {address}: {_lookup(registry.local_node(view, address))}")
    for d in view.dons.values():
        # Relay nodes are the members with a `nodes.` entry; a Workflow DON's members are not.
        for address in (m for m in d.members if d.peer_ids and m in view.nodes):
            trust = _lookup(registry.trust(view, d.name, address))
            lines.append(f"lookup trust {d.name}/{address} (RELAY_PROTOCOL=current): {trust}")
    return "\n".join(lines) + "\n"


def _short(peer_id: bytes) -> str:
    return peer_id.hex()[:16] + "…"
