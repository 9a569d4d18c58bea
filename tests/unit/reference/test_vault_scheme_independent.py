"""An independent client opens the reference vault's shares from docs/reference-vault.md alone.

Deliberately imports nothing of the relay (`workers`, `schemas`): only the standard library and
`cryptography`, following the steps of the docs page on the committed vector.
"""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VECTOR = Path(__file__).resolve().parents[2] / "vectors" / "reference-vault" / "secrets-v2.json"


def lp(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def open_secret(entry: dict[str, Any], private: X25519PrivateKey, enclave_pub: bytes,
                request_id: str) -> bytes:  # fmt: skip
    """The five steps of docs/reference-vault.md, written from the page."""
    name = f"{entry['id']['namespace']}/{entry['id']['key']}".encode()
    context = lp(b"relay-vault-v2") + lp(name) + lp(request_id.encode())
    ciphertext = base64.b64decode(entry["ciphertext"])
    data_key = bytes(32)
    for i, encoded in enumerate(entry["encrypted_shares"]):
        sealed = base64.b64decode(encoded)
        ephemeral_pub, nonce, body = sealed[:32], sealed[32:44], sealed[44:]
        z = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
        k = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=ephemeral_pub + enclave_pub,
            info=b"relay-share-v2",
        ).derive(z)
        share = AESGCM(k).decrypt(nonce, body, context + bytes([i]))
        data_key = bytes(a ^ b for a, b in zip(data_key, share, strict=True))
    return AESGCM(data_key).decrypt(ciphertext[:12], ciphertext[12:], context)


def load() -> tuple[dict[str, Any], X25519PrivateKey, bytes]:
    vector = json.loads(VECTOR.read_text())
    private = X25519PrivateKey.from_private_bytes(bytes.fromhex(vector["enclave_private_key_hex"]))
    return vector, private, bytes.fromhex(vector["enclave_public_key_hex"])


def test_every_secret_of_the_vector_opens_to_its_plaintext_from_the_docs_alone() -> None:
    """Each entry of the relay's result decrypts to the stored value with the documented steps."""
    vector, private, public = load()
    opened = {
        f"{e['id']['namespace']}/{e['id']['key']}": open_secret(
            e, private, public, vector["jsonrpc_id"]
        ).decode()
        for e in vector["result"]["secrets"]
    }
    assert opened == vector["plaintexts"]


def test_each_share_has_the_documented_layout() -> None:
    """Shares are 92 bytes, share one ephemeral key per secret and never repeat a nonce."""
    vector, _, _ = load()
    for entry in vector["result"]["secrets"]:
        sealed = [base64.b64decode(s) for s in entry["encrypted_shares"]]
        assert {len(s) for s in sealed} == {92}
        assert len({s[:32] for s in sealed}) == 1
        assert len({s[32:44] for s in sealed}) == len(sealed)


@pytest.mark.parametrize("change", ["other-request", "swapped-slot", "other-key"])
def test_the_documented_bindings_refuse_a_moved_or_misaddressed_secret(change: str) -> None:
    """Another request id, another secret's slot or another enclave key does not open."""
    vector, private, public = load()
    first, second = vector["result"]["secrets"]
    request_id = vector["jsonrpc_id"]
    if change == "other-request":
        request_id += "x"
    elif change == "swapped-slot":
        first = {**first, "ciphertext": second["ciphertext"]}
    else:
        private = X25519PrivateKey.generate()
    with pytest.raises(InvalidTag):
        open_secret(first, private, public, request_id)


def test_this_client_imports_nothing_of_the_relay() -> None:
    """Its own source imports neither `workers` nor `schemas`: only the docs guided it."""
    tree = ast.parse(Path(__file__).read_text())
    roots = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        )
    }  # fmt: skip
    assert roots.isdisjoint({"workers", "schemas", "tests"})
