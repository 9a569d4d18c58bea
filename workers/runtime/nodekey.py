"""A relay node's Ed25519 signing key (its P2P key: the public half is its peer id, PROTOCOL 10.4).

The key file holds the 32-byte Ed25519 seed as 64 hex digits (one line), the form
`relay response sign --key` reads too. `write_new` creates it with mode 0600 and never
overwrites; `load` refuses a file that group or others can read or write (as ssh does for its
keys), so a key that leaked to other users of the machine is not silently used.

Only the ingress loads it (docs/security.md says why). Nothing here logs, prints or puts the seed
into an exception: errors name the file and what is wrong with it, never its content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from workers.protocol.signed import NodeKey

__all__ = [
    "KEY_FILE_MODE",
    "NodeKey",
    "NodeKeyError",
    "load",
    "parse_seed_hex",
    "peer_id",
    "write_new",
]

SEED_BYTES = 32
KEY_FILE_MODE = 0o600
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class NodeKeyError(ValueError):
    """The key file cannot be used; the message names the file, never its content."""


def peer_id(key: NodeKey) -> str:
    """The public key as lowercase hex: how the registry and operators name a node."""
    return key.public_key.hex()


def parse_seed_hex(text: str, where: str) -> bytes:
    """The seed of a key file's text: 64 hex digits, surrounding whitespace allowed."""
    digits = text.strip()
    if len(digits) != 2 * SEED_BYTES or not set(digits) <= _HEX_DIGITS:
        raise NodeKeyError(
            f"{where}: expected the {SEED_BYTES}-byte Ed25519 seed as {2 * SEED_BYTES} hex digits"
        )
    return bytes.fromhex(digits)


def load(path: Path) -> NodeKey:
    """Read and check a key file (regular file, no group/other access, a hex seed)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise NodeKeyError(f"node key {path}: cannot open: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NodeKeyError(f"node key {path}: not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise NodeKeyError(
                f"node key {path}: permissions {mode:04o} are too open"
                f" (group or others may access it); chmod 600 it"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            raw = handle.read(4 * SEED_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise NodeKeyError(f"node key {path}: not a hex seed") from exc
    return NodeKey(parse_seed_hex(text, f"node key {path}"))


def write_new(path: Path, seed: bytes | None = None) -> NodeKey:
    """Create a new key file (mode 0600, never overwriting) and return its key; a fresh random
    seed unless one is given (the public development keys of `relay up`)."""
    seed = os.urandom(SEED_BYTES) if seed is None else seed
    key = NodeKey(seed)
    try:
        # O_EXCL: an existing file (a key in use, or a link someone planted) is never replaced.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE)
    except OSError as exc:
        raise NodeKeyError(f"node key {path}: cannot create: {exc.strerror}") from exc
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # the umask may have removed bits, never added: be exact
        os.write(fd, (seed.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return key
