"""Vault error mapping (PROTOCOL 10.11): user errors -32602 under current, the fallback -32603."""

from __future__ import annotations

import pytest

from schemas import bus
from schemas.proto.gen import vault_pb2
from workers.dispatch import secrets as dispatch_secrets


def failing(message: str) -> vault_pb2.GetSecretsResponse:
    return vault_pb2.GetSecretsResponse(
        responses=[
            vault_pb2.SecretResponse(
                id=vault_pb2.SecretIdentifier(key="API_KEY", namespace="main"), error=message
            )
        ]
    )


@pytest.mark.parametrize("message", ["key does not exist", "access denied", " "])
def test_under_current_a_vault_user_error_is_invalid_params_with_its_full_text(
    message: str,
) -> None:
    """Any text but the system fallback reaches the enclave as -32602 with the secret's name."""
    result = dispatch_secrets.translate_vault_response(failing(message), "aa", user_errors=True)
    assert isinstance(result, bus.StageError)
    assert result.code == -32602
    assert result.message == f"vault error for secret main/API_KEY: {message}"


def test_under_current_the_vault_system_fallback_is_an_internal_error() -> None:
    """Exactly `failed to handle get secret request` is a system error: -32603."""
    result = dispatch_secrets.translate_vault_response(
        failing("failed to handle get secret request"), "aa", user_errors=True
    )
    assert isinstance(result, bus.StageError)
    assert result.code == -32603
    assert result.detail == (
        "vault error for secret main/API_KEY: failed to handle get secret request"
    )


def test_a_near_miss_of_the_fallback_text_is_a_user_error() -> None:
    """The comparison is exact: a trailing period makes it a user error, as upstream's `==`."""
    result = dispatch_secrets.translate_vault_response(
        failing("failed to handle get secret request."), "aa", user_errors=True
    )
    assert isinstance(result, bus.StageError)
    assert result.code == -32602


def test_under_n1_every_vault_error_stays_internal() -> None:
    """Without user_errors (n1, and an older ingress's requests), -32603 as before."""
    result = dispatch_secrets.translate_vault_response(failing("key does not exist"), "aa")
    assert isinstance(result, bus.StageError)
    assert result.code == -32603
