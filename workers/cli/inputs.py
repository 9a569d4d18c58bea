"""Files the offline protocol commands read: JSON inputs, a node key, a member list.

Every problem with a file (unreadable, a key that is not a 32-byte hex seed or is readable by
others, a member that is not a 32-byte hex public key) is a usage error: `InputError`, exit 2,
one line naming the file. Rejections of the *content* by the protocol are the commands' business
(exit 1).
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

from workers.protocol.signed import ED25519_PUBLIC_KEY_SIZE, InvalidKeyError, NodeKey


class InputError(Exception):
    """A file the command cannot use; the text is printed after the command's name."""


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of stdin for `-`."""
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from exc


def read_key(path: str) -> NodeKey:
    """A node key from a file holding its 32-byte seed as hex, readable by its owner only.

    The seed is a node's identity: a key file that group or others can read is refused (as
    ssh refuses such private keys), and no part of the seed appears in any message.
    """
    try:
        mode = Path(path).stat().st_mode
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    raw = read_bytes(path)
    try:
        return NodeKey.from_hex(raw.decode("ascii"))
    except (UnicodeDecodeError, InvalidKeyError):
        raise InputError(f"key file {path} does not hold a 32-byte seed as 64 hex digits") from None


def read_members(path: str) -> list[bytes]:
    """Public keys, one hex key a line (blank lines and `#` comments skipped), in file order."""
    members: list[bytes] = []
    for number, line in enumerate(read_bytes(path).decode("utf-8", "replace").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            key = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            key = b""
        if len(key) != ED25519_PUBLIC_KEY_SIZE:
            raise InputError(f"{path} line {number}: not a 32-byte public key in hex")
        members.append(key)
    return members
