"""Where the enclave's attestation document comes from: one interface, two sources.

- `NitroSource`: the real Nitro Secure Module (`/dev/nsm`, `workers.enclave.nsm`), inside an
  enclave.
- `SimulatedSource`: a document minted by a test chain (`workers.attestation.testchain`) for
  development; a relay accepts it only with that chain's root configured as an explicit
  development root, never the pinned AWS root.

`default_source()` picks the device when it exists and refuses to fall back silently.
"""

from __future__ import annotations

import os
from typing import Protocol

from workers.attestation.testchain import TestChain
from workers.enclave.nsm import DEVICE, NsmDevice


class AttestationSource(Protocol):
    def attest(self, user_data: bytes) -> bytes:
        """A COSE_Sign1 Nitro attestation document whose `user_data` is `user_data`."""


class NitroSource:
    """The real NSM device: PCRs and signature are the hardware's."""

    def __init__(self, device: NsmDevice | None = None) -> None:
        self._device = device or NsmDevice()

    def attest(self, user_data: bytes) -> bytes:
        return self._device.attestation(user_data=user_data)


class SimulatedSource:
    """A development source: a test chain signs documents with the PCRs given (its fake ones
    by default). Register `chain.trusted_values_json(pcrs)` in the registry and give the relay
    the chain's root as a development root."""

    def __init__(
        self, chain: TestChain | None = None, pcrs: dict[int, bytes] | None = None
    ) -> None:
        self.chain = chain or TestChain()
        self._pcrs = pcrs

    def attest(self, user_data: bytes) -> bytes:
        return self.chain.document(user_data=user_data, pcrs=self._pcrs)


class NoAttestationSource(Exception):
    """No NSM device here, and the caller did not ask for a simulated source."""


def default_source(*, simulate: bool = False, device: str = DEVICE) -> AttestationSource:
    """The NSM when `device` exists; a fresh simulated source only when `simulate` is set."""
    if os.path.exists(device):
        return NitroSource(NsmDevice(device))
    if simulate:
        return SimulatedSource()
    raise NoAttestationSource(
        f"{device} does not exist (not inside a Nitro enclave); pass simulate=True for development"
    )
