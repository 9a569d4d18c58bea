"""`--nats` on every command: a list, repeatable, checked at parse time."""

from __future__ import annotations

import pytest

from workers.cli import build_parser


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "relay.>"],
        ["svc"],
        ["req", "x.y"],
        ["registry", "show"],
        ["gateway", "--members", "a,b,c,d"],
        ["up"],
        ["worker", "ingress"],
    ],
)
def test_a_repeated_nats_flag_adds_servers_to_one_list(command: list[str]) -> None:
    """`--nats a --nats b,c` is the list a,b,c, whichever command takes it."""
    args = build_parser().parse_args(
        [*command, "--nats", "nats://a:1", "--nats", "nats://b:2,nats://c:3"]
    )
    assert args.nats == "nats://a:1,nats://b:2,nats://c:3"


def test_the_first_nats_flag_replaces_the_environment_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """$RELAY_NATS_URL is the default; an explicit --nats replaces it rather than adding to it."""
    monkeypatch.setenv("RELAY_NATS_URL", "nats://env:1")
    assert build_parser().parse_args(["svc"]).nats == "nats://env:1"
    assert build_parser().parse_args(["svc", "--nats", "nats://x:2"]).nats == "nats://x:2"


def test_a_bad_server_is_a_usage_error_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unusable entry exits 2 with one line naming it, the password masked."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["svc", "--nats", "nats://u:pw9@a:1,http://u:pw9@b:2"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "scheme 'http'" in err
    assert "pw9" not in err


def test_a_bad_js_domain_is_a_usage_error() -> None:
    """A domain must be one subject token: `a.b` would address another API prefix."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["registry", "show", "--js-domain", "a.b"])
    assert exited.value.code == 2
