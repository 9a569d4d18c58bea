"""Node key files: created 0600 and never overwritten, refused when too open or malformed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from workers.runtime import nodekey


def test_a_new_key_file_holds_a_hex_seed_with_mode_0600_and_loads_back(tmp_path: Path) -> None:
    """write_new creates a 0600 file of 64 hex digits whose loaded key has the same public key."""
    path = tmp_path / "node.key"
    created = nodekey.write_new(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert len(text.strip()) == 64
    assert int(text, 16) >= 0
    loaded = nodekey.load(path)
    assert loaded.public_key == created.public_key
    assert len(loaded.public_key) == 32


def test_a_signature_verifies_under_the_public_key_with_cryptography(tmp_path: Path) -> None:
    """The key signs pure Ed25519: the public key verifies it and rejects another message."""
    key = nodekey.write_new(tmp_path / "k")
    signature = key.sign(b"payload")
    assert len(signature) == 64
    public = Ed25519PublicKey.from_public_bytes(key.public_key)
    public.verify(signature, b"payload")
    with pytest.raises(InvalidSignature):
        public.verify(signature, b"other payload")


def test_the_seed_of_the_rfc_8032_first_vector_gives_its_public_key(tmp_path: Path) -> None:
    """RFC 8032 7.1 test 1: the file's seed is the raw Ed25519 secret, not some derived form."""
    path = tmp_path / "k"
    seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, seed.encode() + b"\n")
    os.close(fd)
    key = nodekey.load(path)
    assert (
        nodekey.peer_id(key) == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
        "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    """A second write_new to the same path fails and leaves the first key intact."""
    path = tmp_path / "node.key"
    first = nodekey.write_new(path)
    with pytest.raises(nodekey.NodeKeyError, match="cannot create"):
        nodekey.write_new(path)
    assert nodekey.load(path).public_key == first.public_key


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """Mode 0644 is refused with the mode in the message, as ssh refuses an open key."""
    path = tmp_path / "node.key"
    nodekey.write_new(path)
    path.chmod(0o644)
    with pytest.raises(nodekey.NodeKeyError, match="permissions 0644 are too open"):
        nodekey.load(path)


@pytest.mark.parametrize(
    "content",
    [b"", b"abcd\n", b"zz" * 32, b"00" * 33, b"\xff" * 64, b"00" * 16 + b" " + b"00" * 16],
)
def test_a_file_that_is_not_a_64_digit_hex_seed_is_refused_without_echoing_it(
    tmp_path: Path, content: bytes
) -> None:
    """Malformed content is a NodeKeyError that names the file and does not contain the bytes."""
    path = tmp_path / "node.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(nodekey.NodeKeyError) as caught:
        nodekey.load(path)
    assert str(path) in str(caught.value)
    if len(content) > 8:
        assert content.decode("latin-1") not in str(caught.value)


def test_a_missing_file_and_a_directory_are_refused(tmp_path: Path) -> None:
    """Neither a missing path nor a directory is a key."""
    with pytest.raises(nodekey.NodeKeyError, match="cannot open"):
        nodekey.load(tmp_path / "missing")
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(nodekey.NodeKeyError):
        nodekey.load(tmp_path / "dir")


def test_the_key_repr_shows_the_public_key_and_no_secret(tmp_path: Path) -> None:
    """repr/str of a loaded key never contain the seed the file holds."""
    path = tmp_path / "node.key"
    key = nodekey.write_new(path)
    seed = path.read_text().strip()
    assert seed not in repr(key)
    assert seed not in str(key)
