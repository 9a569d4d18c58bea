"""A node's settings: every number is checked at start, and only `none` turns attestation age off."""

from __future__ import annotations

import os

import pytest

from workers.cli import main
from workers.runtime.settings import NodeSettings


@pytest.fixture(autouse=True)
def _no_relay_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from no RELAY_* variables, whatever the shell running pytest has set."""
    for name in list(os.environ):
        if name.startswith("RELAY_"):
            monkeypatch.delenv(name)


def test_without_any_variables_the_defaults_are_unchanged() -> None:
    """No environment gives the documented defaults, the attestation age check on at 300 s."""
    settings = NodeSettings.from_env()
    assert settings.request_timeout_s == 10.0
    assert settings.stage_attempt_timeout_s == 1.0
    assert settings.max_attestation_age_s == 300.0
    assert settings.concurrency == 64
    assert settings.metrics_port is None


def test_valid_values_from_the_environment_are_taken_as_they_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Good numbers are read exactly as before, fractions and a metrics port of 0 included."""
    monkeypatch.setenv("RELAY_REQUEST_TIMEOUT_S", "2.5")
    monkeypatch.setenv("RELAY_STAGE_ATTEMPT_TIMEOUT_S", "0.25")
    monkeypatch.setenv("RELAY_MAX_ATTESTATION_AGE_S", "60")
    monkeypatch.setenv("RELAY_METRICS_PORT", "0")
    settings = NodeSettings.from_env()
    assert settings.request_timeout_s == 2.5
    assert settings.stage_attempt_timeout_s == 0.25
    assert settings.max_attestation_age_s == 60.0
    assert settings.metrics_port == 0


def test_an_empty_max_attestation_age_keeps_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty RELAY_MAX_ATTESTATION_AGE_S is the 300 s default, never a disabled check."""
    monkeypatch.setenv("RELAY_MAX_ATTESTATION_AGE_S", "")
    assert NodeSettings.from_env().max_attestation_age_s == 300.0


@pytest.mark.parametrize("word", ["none", "None", " NONE "])
def test_only_the_word_none_disables_the_attestation_age_check(
    monkeypatch: pytest.MonkeyPatch, word: str
) -> None:
    """The documented `none`, in any case and with spaces around it, turns the check off."""
    monkeypatch.setenv("RELAY_MAX_ATTESTATION_AGE_S", word)
    assert NodeSettings.from_env().max_attestation_age_s is None


@pytest.mark.parametrize("raw", ["off", "false", "0", "-1", "nan", "inf", "  ", "5m", "null"])
def test_a_max_attestation_age_other_than_seconds_or_none_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """Anything but a positive finite number or `none` is an error naming the variable."""
    monkeypatch.setenv("RELAY_MAX_ATTESTATION_AGE_S", raw)
    with pytest.raises(ValueError, match="RELAY_MAX_ATTESTATION_AGE_S") as exc:
        NodeSettings.from_env()
    assert "'none'" in str(exc.value)


@pytest.mark.parametrize("variable", ["RELAY_REQUEST_TIMEOUT_S", "RELAY_STAGE_ATTEMPT_TIMEOUT_S"])
@pytest.mark.parametrize("raw", ["0", "-1", "-0.5", "nan", "inf", "-inf", "soon", "  "])
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, raw: str
) -> None:
    """A zero, negative, infinite, NaN or non-numeric timeout stops the start, naming itself."""
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=variable) as exc:
        NodeSettings.from_env()
    assert raw.strip() in str(exc.value)


@pytest.mark.parametrize("raw", ["-1", "65536", "http", "9464.0"])
def test_a_metrics_port_outside_0_to_65535_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    """RELAY_METRICS_PORT is a whole number 0-65535 (0: off), or the error names it and the value."""
    monkeypatch.setenv("RELAY_METRICS_PORT", raw)
    with pytest.raises(ValueError, match="RELAY_METRICS_PORT") as exc:
        NodeSettings.from_env()
    assert raw in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("request_timeout_s", 0.0),
        ("stage_attempt_timeout_s", float("nan")),
        ("max_attestation_age_s", -1.0),
        ("max_attestation_age_s", float("inf")),
        ("concurrency", 0),
        ("metrics_port", 70000),
    ],
)
def test_settings_built_in_code_are_checked_the_same_way(field: str, value: float) -> None:
    """The constructor refuses what the environment would: one rule for every source."""
    with pytest.raises(ValueError, match="must be"):
        NodeSettings(**{field: value})  # type: ignore[arg-type]


def test_a_bad_metrics_port_flag_is_refused_like_the_variable() -> None:
    """`--metrics-port` reaches the same check as RELAY_METRICS_PORT through `from_env`."""
    with pytest.raises(ValueError, match="--metrics-port"):
        NodeSettings.from_env(metrics_port=70000)


def test_relay_worker_refuses_a_bad_setting_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay worker` exits 1 at start with `relay worker <actor>: <what is wrong>`."""
    monkeypatch.setattr("workers.cli.node.configure_logs", lambda *a, **k: None)
    monkeypatch.setenv("RELAY_EVENT_LOOP", "asyncio")
    monkeypatch.setenv("RELAY_STAGE_ATTEMPT_TIMEOUT_S", "0")
    assert main(["worker", "ingress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("relay worker ingress: RELAY_STAGE_ATTEMPT_TIMEOUT_S")


def test_relay_up_refuses_a_bad_flag_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`relay up --metrics-port 70000` exits 1 with one `relay up:` line, no server started."""
    monkeypatch.setattr("workers.cli.node.configure_logs", lambda *a, **k: None)
    assert main(["up", "--metrics-port", "70000"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("relay up: RELAY_METRICS_PORT (--metrics-port)")


@pytest.mark.parametrize(
    ("variable", "field", "default"),
    [
        ("RELAY_DON", "don", "relay-don"),
        ("RELAY_NODE", "node", "node-0"),
        ("RELAY_NATS_URL", "nats_url", "nats://127.0.0.1:4222"),
    ],
)
def test_an_empty_name_or_url_means_the_default(
    monkeypatch: pytest.MonkeyPatch, variable: str, field: str, default: str
) -> None:
    """`RELAY_DON=` serves the default DON's subjects, not an empty subject token."""
    monkeypatch.setenv(variable, "")
    assert getattr(NodeSettings.from_env(), field) == default


def test_the_protocol_defaults_to_n1_and_current_is_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RELAY_PROTOCOL is n1 when unset or empty, and current when it says so."""
    assert NodeSettings.from_env().protocol == "n1"
    monkeypatch.setenv("RELAY_PROTOCOL", "")
    assert NodeSettings.from_env().protocol == "n1"
    monkeypatch.setenv("RELAY_PROTOCOL", "current")
    monkeypatch.setenv("RELAY_NODE_KEY", "/keys/node-0.key")
    settings = NodeSettings.from_env()
    assert settings.protocol == "current"
    assert str(settings.node_key) == "/keys/node-0.key"


def test_an_unknown_protocol_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt protocol (`N1`, `v2`) is a ValueError naming the variable, not a silent n1."""
    for bad in ("N1", "v2", "latest"):
        monkeypatch.setenv("RELAY_PROTOCOL", bad)
        with pytest.raises(ValueError, match="RELAY_PROTOCOL must be 'n1' or 'current'"):
            NodeSettings.from_env()
