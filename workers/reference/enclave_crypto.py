"""The reference share-encryption scheme between the reference vault and an enclave (X25519).

Not upstream's TDH2: a small, documented stand-in with the same shape (a ciphertext plus key
shares encrypted to the enclave's key), so the demo can show that a secret only opens with the
attested enclave's private key.

- The enclave holds an X25519 key pair; `enclave_public_key` is the hex of its 32-byte public key.
- Per secret, value and request the vault has a 32-byte data key K, derived from its seed, the
  secret id, a hash of the value and the request's reference id: an enclave that once opened a
  secret (say one whose measurements were later revoked) learns nothing about the next request's
  ciphertext, nor about a rotated value. `ciphertext = nonce(12) || AES-256-GCM(K, value,
  aad=context)`, where `context` binds "relay-vault-v2", the secret's name (`namespace/key`) and
  the reference id: a ciphertext moved to another secret's slot, or replayed into another
  request, does not open.
- K is split into `SHARES` XOR shares (all of them are needed).
- The shares are sealed to the enclave key with one ephemeral X25519 key e per secret and
  enclave key: `z = X25519(e, enclave)`, `k = HKDF-SHA256(z, salt=e_pub || enclave_pub,
  info="relay-share-v2")`, and sealed share i is `e_pub(32) || nonce_i(12) || AES-256-GCM(k,
  share_i, aad=context || i)` with a distinct nonce per share (one key, never one nonce twice).
  One key agreement per secret rather than one per share: the X25519 exchange is the vault's
  costliest step.
- The vault derives every random-looking value from its seed and the request (secret identity,
  value, enclave key, reference id), so every relay node asking for the same request gets the
  same bytes, as all callers of a real DON get the same consensus output, and honest relays can
  agree. To open a secret the enclave names it (`namespace/key`, as in the relay's answer) and
  gives its request's reference id (its JSON-RPC id unless it set `reference_id`).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# The enclave's side (opening) lives in the enclave client library; the vault seals with the
# same primitives, so the two sides of the scheme cannot drift apart.
from workers.enclave.shares import (
    DecryptionError,
    context,
    decrypt_secret,
    open_share,
    public_hex,
    share_key,
)

__all__ = [
    "SHARES",
    "DecryptionError",
    "decrypt_secret",
    "encrypt_secret",
    "open_share",
    "public_hex",
    "seal_shares",
]

SHARES = 3
_context = context  # the name the vault side (and its tests) use


def _derive(seed: bytes, *parts: bytes) -> bytes:
    mac = hmac.new(seed, digestmod=hashlib.sha256)
    for part in parts:
        mac.update(len(part).to_bytes(4, "big") + part)
    return mac.digest()


def seal_shares(
    shares: list[bytes], enclave_pub: bytes, ephemeral_seed: bytes, context: bytes
) -> list[bytes]:
    """Seal each share to `enclave_pub` under one ephemeral key derived from `ephemeral_seed`;
    share i is bound to `context` and to its index."""
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_seed)
    ephemeral_pub = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(enclave_pub))
    aead = AESGCM(share_key(shared, ephemeral_pub, enclave_pub))
    sealed = []
    for i, share in enumerate(shares):
        nonce = hashlib.sha256(b"nonce" + ephemeral_seed + bytes([i])).digest()[:12]
        sealed.append(ephemeral_pub + nonce + aead.encrypt(nonce, share, context + bytes([i])))
    return sealed


def encrypt_secret(
    value: bytes,
    *,
    seed: bytes,
    secret_id: bytes,
    name: bytes,
    enclave_pub: bytes,
    reference: bytes,
) -> tuple[bytes, list[bytes]]:
    """(ciphertext, sealed shares) for one secret and one enclave key; deterministic.

    `secret_id` (owner/namespace/key) feeds the derivations, `name` (namespace/key) the binding
    the enclave checks. The ciphertext depends on the request, not on the enclave key: every key
    of one request gets the same ciphertext and its own shares."""
    value_hash = hashlib.sha256(value).digest()
    context = _context(name, reference)
    data_key = _derive(seed, b"data-key", secret_id, value_hash, reference)
    nonce = _derive(seed, b"value-nonce", secret_id, value_hash, reference)[:12]
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, value, context)
    parts = [
        _derive(seed, b"share", secret_id, value_hash, reference, bytes([i]))
        for i in range(SHARES - 1)
    ]
    last = data_key
    for part in parts:
        last = bytes(a ^ b for a, b in zip(last, part, strict=True))
    shares = [*parts, last]
    ephemeral_seed = _derive(seed, b"ephemeral", secret_id, enclave_pub, reference)
    return ciphertext, seal_shares(shares, enclave_pub, ephemeral_seed, context)
