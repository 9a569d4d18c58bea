"""Opening the reference vault's shares: the enclave side of scheme `relay-vault-v2`.

The scheme is specified in docs/reference-vault.md; the vault side (sealing) is
`workers.reference.enclave_crypto`, which shares these primitives so both sides cannot drift.
Pure: `cryptography` and the standard library only.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SCHEME = b"relay-vault-v2"
SHARE_INFO = b"relay-share-v2"
SEALED_SHARE_MIN = 32 + 12 + 16  # ephemeral key, nonce, GCM tag


class DecryptionError(Exception):
    """A share or ciphertext does not open with this key, secret name and request."""


def context(name: bytes, reference: bytes) -> bytes:
    """What a ciphertext and its shares are bound to (length-prefixed, so parts cannot shift)."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in (SCHEME, name, reference))


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_hex(private: X25519PrivateKey) -> str:
    """`enclave_public_key` as the params carry it: lowercase hex of the raw 32-byte key."""
    return public_bytes(private).hex()


def share_key(shared: bytes, ephemeral_pub: bytes, enclave_pub: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral_pub + enclave_pub, info=SHARE_INFO
    ).derive(shared)


def open_share(sealed: bytes, private: X25519PrivateKey, bound: bytes, index: int) -> bytes:
    """Share `index` of one secret, sealed to `private`'s public key and bound to `bound`."""
    if len(sealed) < SEALED_SHARE_MIN:
        raise DecryptionError("sealed share too short")
    ephemeral_pub, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
    shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
    aead = AESGCM(share_key(shared, ephemeral_pub, public_bytes(private)))
    try:
        return aead.decrypt(nonce, body, bound + bytes([index]))
    except InvalidTag as exc:
        raise DecryptionError("share is not sealed to this key, secret and request") from exc


def decrypt_secret(
    ciphertext: bytes,
    sealed_shares: list[bytes],
    private: X25519PrivateKey,
    *,
    name: bytes,
    reference: bytes,
) -> bytes:
    """Open every share, XOR them into the data key, open the value; `name` is `namespace/key`
    and `reference` the JSON-RPC id of the request that fetched it."""
    if not sealed_shares:
        raise DecryptionError("no shares")
    bound = context(name, reference)
    key = bytes(32)
    for index, sealed in enumerate(sealed_shares):
        share = open_share(sealed, private, bound, index)
        if len(share) != len(key):
            raise DecryptionError("share has the wrong length")
        key = bytes(a ^ b for a, b in zip(key, share, strict=True))
    try:
        return AESGCM(key).decrypt(ciphertext[:12], ciphertext[12:], bound)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError("ciphertext does not open with the recovered key") from exc
