"""The Nitro Secure Module device (`/dev/nsm`): one Attestation request through its ioctl.

As AWS documents it (aws-nitro-enclaves-nsm-api `src/driver`, `src/api`; Linux `uapi/linux/nsm.h`):

- the request is CBOR, serde's externally tagged form of the API enum:
  `{"Attestation": {"user_data": bstr|null, "nonce": bstr|null, "public_key": bstr|null}}`;
- the answer is `{"Attestation": {"document": bstr}}` (a COSE_Sign1 document) or
  `{"Error": "<ErrorCode>"}` such as `"InvalidArgument"`;
- the ioctl is `_IOWR(0x0A, 0, struct nsm_raw)` = 0xC0200A00, with
  `struct nsm_raw { struct { u64 addr, len } request, response; }` (32 bytes); the request is
  at most 0x1000 bytes, the response buffer 0x3000, and the device writes the answer's length
  back into `response.len`;
- user_data and nonce hold at most 512 bytes each, public_key 1024.

The ioctl and the device opener are injectable, so everything but the device itself is tested
here (tests/unit/enclave/test_nsm.py drives a fake device through the same struct and buffers).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct
from collections.abc import Callable
from typing import Any

import cbor2

DEVICE = "/dev/nsm"
IOCTL_MAGIC = 0x0A
REQUEST_MAX = 0x1000
RESPONSE_MAX = 0x3000
MAX_USER_DATA = 512
MAX_NONCE = 512
MAX_PUBLIC_KEY = 1024
_RAW = struct.Struct("=QQQQ")  # request.addr, request.len, response.addr, response.len


def _iowr(magic: int, number: int, size: int) -> int:
    """Linux `_IOWR`: direction read|write (3) in bits 30-31, size in 16-29, type, number."""
    return (3 << 30) | (size << 16) | (magic << 8) | number


IOCTL_RAW = _iowr(IOCTL_MAGIC, 0, _RAW.size)  # 0xC0200A00

Ioctl = Callable[[int, int, int], int]
"""(fd, request code, address of the struct) -> return code (raises OSError on failure)."""


class NsmError(Exception):
    """The device is missing, refused the request or answered something unusable."""


def _default_ioctl(fd: int, code: int, address: int) -> int:
    return fcntl.ioctl(fd, code, address)


def encode_attestation_request(
    *, user_data: bytes | None, nonce: bytes | None = None, public_key: bytes | None = None
) -> bytes:
    for name, value, limit in (
        ("user_data", user_data, MAX_USER_DATA),
        ("nonce", nonce, MAX_NONCE),
        ("public_key", public_key, MAX_PUBLIC_KEY),
    ):
        if value is not None and len(value) > limit:
            raise NsmError(f"{name} is {len(value)} bytes; the NSM takes at most {limit}")
    return cbor2.dumps(
        {"Attestation": {"user_data": user_data, "nonce": nonce, "public_key": public_key}}
    )


def decode_attestation_response(data: bytes) -> bytes:
    """The document of an Attestation answer, or NsmError naming the device's error code."""
    try:
        answer: Any = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError) as exc:
        raise NsmError(f"NSM answer is not CBOR: {exc}") from exc
    if isinstance(answer, dict) and len(answer) == 1:
        ((kind, body),) = answer.items()
        if kind == "Error":
            raise NsmError(f"NSM refused the request: {body}")
        if kind == "Attestation" and isinstance(body, dict):
            document = body.get("document")
            if isinstance(document, bytes) and document:
                return document
    raise NsmError("NSM answer is not an Attestation document")


def process(request: bytes, *, fd: int, ioctl: Ioctl = _default_ioctl) -> bytes:
    """One raw request/response round trip through the device's ioctl."""
    if len(request) > REQUEST_MAX:
        raise NsmError(f"NSM request is {len(request)} bytes; at most {REQUEST_MAX}")
    req = ctypes.create_string_buffer(request, len(request))
    resp = ctypes.create_string_buffer(RESPONSE_MAX)
    raw = ctypes.create_string_buffer(
        _RAW.pack(ctypes.addressof(req), len(request), ctypes.addressof(resp), RESPONSE_MAX),
        _RAW.size,
    )
    try:
        ioctl(fd, IOCTL_RAW, ctypes.addressof(raw))
    except OSError as exc:
        raise NsmError(f"NSM ioctl failed: {exc}") from exc
    length = _RAW.unpack(raw.raw)[3]
    if not 0 < length <= RESPONSE_MAX:
        raise NsmError(f"NSM answered {length} bytes")
    return resp.raw[:length]


class NsmDevice:
    """The enclave's NSM; opened per request, so a long-lived client holds no descriptor."""

    def __init__(
        self,
        path: str = DEVICE,
        *,
        ioctl: Ioctl = _default_ioctl,
        opener: Callable[[str], int] = lambda p: os.open(p, os.O_RDWR),
    ) -> None:
        self._path = path
        self._ioctl = ioctl
        self._opener = opener

    def attestation(
        self, *, user_data: bytes, nonce: bytes | None = None, public_key: bytes | None = None
    ) -> bytes:
        request = encode_attestation_request(
            user_data=user_data, nonce=nonce, public_key=public_key
        )
        try:
            fd = self._opener(self._path)
        except OSError as exc:
            raise NsmError(f"cannot open {self._path}: {exc}") from exc
        try:
            return decode_attestation_response(process(request, fd=fd, ioctl=self._ioctl))
        finally:
            os.close(fd)
