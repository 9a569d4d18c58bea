"""`relay keys new --out FILE` / `relay keys public FILE`: a relay node's Ed25519 key.

`new` writes a fresh key file (the 32-byte seed as hex, mode 0600, never over an existing file)
and prints its public key, the node's peer id, as hex: that is what goes into the registry as
the node's `peer_ids` entry (docs/registry.md). `public` prints the public key of an existing
file. Exit codes: 0 done, 1 the file cannot be written or read, 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workers.runtime import nodekey

EXIT_OK = 0
EXIT_FAILED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create or inspect a node's Ed25519 signing key")
    cmds = p.add_subparsers(dest="keys_command", required=True)

    new = cmds.add_parser("new", help="write a new key file (0600) and print its public key")
    new.add_argument("--out", type=Path, required=True, help="the key file to create")
    new.set_defaults(func=run_new)

    public = cmds.add_parser("public", help="print the public key (peer id) of a key file")
    public.add_argument("file", type=Path, help="a key file written by `relay keys new`")
    public.set_defaults(func=run_public)


def run_new(args: argparse.Namespace) -> int:
    try:
        key = nodekey.write_new(args.out)
    except nodekey.NodeKeyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    print(nodekey.peer_id(key))
    return EXIT_OK


def run_public(args: argparse.Namespace) -> int:
    try:
        key = nodekey.load(args.file)
    except nodekey.NodeKeyError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    print(nodekey.peer_id(key))
    return EXIT_OK
