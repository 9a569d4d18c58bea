"""The enclave client's errors: one root, so a caller can catch everything the library raises."""

from __future__ import annotations


class EnclaveClientError(Exception):
    """Anything the enclave client could not do."""


class RelayError(EnclaveClientError):
    """The relay (or the gateway) answered a JSON-RPC error; `code` and `message` as sent."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"relay error {code}: {message}")
        self.code = code
        self.message = message


class AnswerError(EnclaveClientError):
    """The answer is not what the protocol allows (malformed, wrong id, unexpected secret...)."""


class NoQuorum(AnswerError):
    """No result of the bundle has F+1 valid distinct signers (PROTOCOL 10.6 step 6)."""


class TransportError(EnclaveClientError):
    """The request could not be sent or no answer came back."""
