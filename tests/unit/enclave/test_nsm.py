"""The NSM ioctl request and answer, driven through a fake device with the real struct and buffers."""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable

import cbor2
import pytest

from workers.enclave import nsm
from workers.enclave.attest import NitroSource, NoAttestationSource, SimulatedSource, default_source


def fake_device(answer: Callable[[object], bytes], seen: list[object]) -> nsm.Ioctl:
    """An ioctl that reads the request where the struct points and writes `answer` back."""

    def ioctl(fd: int, code: int, address: int) -> int:
        assert code == 0xC0200A00
        req_addr, req_len, resp_addr, resp_len = struct.unpack(
            "=QQQQ", ctypes.string_at(address, 32)
        )
        request = cbor2.loads(ctypes.string_at(req_addr, req_len))
        seen.append(request)
        out = answer(request)
        assert len(out) <= resp_len
        ctypes.memmove(resp_addr, out, len(out))
        ctypes.memmove(address + 24, struct.pack("=Q", len(out)), 8)
        return 0

    return ioctl


def device(ioctl: nsm.Ioctl) -> nsm.NsmDevice:
    return nsm.NsmDevice(ioctl=ioctl, opener=lambda _: os.open(os.devnull, os.O_RDWR))


def test_the_ioctl_code_is_iowr_0x0a_0_of_the_32_byte_struct() -> None:
    """_IOWR(0x0A, 0, struct nsm_raw) is 0xC0200A00, as the AWS driver computes it."""
    assert nsm.IOCTL_RAW == 0xC0200A00


def test_an_attestation_request_reaches_the_device_as_serdes_tagged_cbor_and_returns_the_document() -> (
    None
):
    """The device sees {"Attestation": {user_data, nonce, public_key}} and its document comes back."""
    seen: list[object] = []
    doc = b"\x84COSE" + bytes(range(200))
    nitro = NitroSource(
        device(fake_device(lambda _: cbor2.dumps({"Attestation": {"document": doc}}), seen))
    )
    assert nitro.attest(b"\x11" * 32) == doc
    assert seen == [{"Attestation": {"user_data": b"\x11" * 32, "nonce": None, "public_key": None}}]


def test_a_device_error_is_raised_with_its_code() -> None:
    """{"Error": "InvalidArgument"} becomes NsmError naming the code."""
    dev = device(fake_device(lambda _: cbor2.dumps({"Error": "InvalidArgument"}), []))
    with pytest.raises(nsm.NsmError, match="InvalidArgument"):
        dev.attestation(user_data=b"x")


@pytest.mark.parametrize(
    "answer",
    [
        b"\xff\xff",
        cbor2.dumps({"Attestation": {}}),
        cbor2.dumps({"DescribeNSM": {}}),
        cbor2.dumps("x"),
    ],
)
def test_an_unusable_answer_is_an_error_not_a_document(answer: bytes) -> None:
    """Garbage, an empty attestation or another response kind never passes for a document."""
    with pytest.raises(nsm.NsmError):
        device(fake_device(lambda _: answer, [])).attestation(user_data=b"x")


def test_oversized_fields_are_refused_before_the_device_is_opened() -> None:
    """user_data over 512 bytes is refused without touching the device."""
    opened: list[str] = []

    def opener(path: str) -> int:
        opened.append(path)
        return os.open(os.devnull, os.O_RDWR)

    with pytest.raises(nsm.NsmError, match="user_data"):
        nsm.NsmDevice(opener=opener).attestation(user_data=b"x" * 513)
    assert opened == []


def test_a_failing_ioctl_and_a_missing_device_are_nsm_errors() -> None:
    """OSError from the ioctl or from opening the device is wrapped as NsmError."""

    def broken(fd: int, code: int, address: int) -> int:
        raise OSError(22, "Invalid argument")

    with pytest.raises(nsm.NsmError, match="ioctl"):
        device(broken).attestation(user_data=b"x")
    with pytest.raises(nsm.NsmError, match="cannot open"):
        nsm.NsmDevice("/nonexistent/nsm").attestation(user_data=b"x")


def test_the_default_source_is_the_device_when_present_and_never_silently_simulated() -> None:
    """No device: an error unless simulate=True; a device path that exists: the NSM."""
    with pytest.raises(NoAttestationSource):
        default_source(device="/nonexistent/nsm")
    assert isinstance(default_source(device="/nonexistent/nsm", simulate=True), SimulatedSource)
    assert isinstance(default_source(device=os.devnull), NitroSource)
