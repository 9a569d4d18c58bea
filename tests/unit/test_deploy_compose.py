"""deploy/compose and deploy/Dockerfile, checked with what this machine has: the compose file
against the compose specification's schema (check-jsonschema's vendored copy), the NATS servers'
config with nats-server -t, every command against the relay CLI; the image is built only where a
container engine answers."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy_support import (
    DEPLOY,
    ROOT,
    assert_help_works,
    assert_read_by_the_code,
    assert_relay_command,
    command_of,
    load,
)
from workers.gateway import sizing
from workers.gateway.ratelimit import RateLimit
from workers.node.process import ALL_ACTORS, NODE_ACTORS

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
BIN = Path(sys.executable).parent


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(COMPOSE)["services"]
    return found


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- compose ------------------------------------------------------------------------------------


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    """check-jsonschema with the compose-spec schema it ships accepts the file."""
    proc = check_jsonschema(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_refuses_a_service_key_that_does_not_exist(tmp_path: Path) -> None:
    """The check above can fail: a misspelled service key is an error."""
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("\n  read_only: true", "\n  readonly: true", 1))
    assert broken.read_text() != COMPOSE.read_text()
    proc = check_jsonschema(broken)
    assert proc.returncode == 1
    assert "readonly" in proc.stdout


def test_three_nats_servers_one_nodes_actors_and_the_gateway_run_from_one_image() -> None:
    """Every service uses the relay image; the NATS servers, each node actor and the gateway are
    all there."""
    found = services()
    images = {s["image"] for s in found.values()}
    assert len(images) == 1
    nats = sorted(n for n, s in found.items() if s.get("entrypoint") == ["nats-server"])
    assert nats == ["nats-1", "nats-2", "nats-3"]
    workers = {s["command"][1] for s in found.values() if s.get("command", [""])[0] == "worker"}
    assert set(NODE_ACTORS) <= workers <= set(ALL_ACTORS)
    assert any(s.get("command", [""])[0] == "gateway" for s in found.values())


def test_every_relay_service_runs_a_real_relay_command() -> None:
    """Commands of the services whose entrypoint is the image's (`relay`) parse with the CLI."""
    commands = []
    for service in services().values():
        if "entrypoint" in service:
            continue
        assert_relay_command(service["command"])
        commands.append(command_of(service["command"]))
    assert_help_works(commands)


def test_the_nats_servers_config_is_accepted_by_nats_server(tmp_path: Path) -> None:
    """The mounted files, laid out as in the container, pass `nats-server -t` for each server."""
    for name, service in services().items():
        if service.get("entrypoint") != ["nats-server"]:
            continue
        for volume in service["volumes"]:
            source, target, *_ = volume.split(":")
            if source.startswith("."):
                dest = tmp_path / name / Path(target).name
                dest.parent.mkdir(exist_ok=True)
                shutil.copy(COMPOSE_DIR / source, dest)
        config = tmp_path / name / Path(service["command"][-1]).name
        env = {"NATS_SERVER_NAME": service["environment"]["NATS_SERVER_NAME"]}
        proc = subprocess.run(
            [str(BIN / "nats-server"), "-t", "-c", str(config)],
            capture_output=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert proc.returncode == 0, (name, proc.stderr)


def test_every_bind_mounted_file_exists_in_the_repository() -> None:
    """Relative volume sources resolve from deploy/compose to real files."""
    for service in services().values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).is_file(), source


def test_every_variable_the_compose_file_sets_is_one_the_code_reads() -> None:
    """RELAY_* environment entries are real settings."""
    names = [
        key
        for service in services().values()
        for key in service.get("environment", {})
        if key.startswith("RELAY_")
    ]
    assert names
    assert_read_by_the_code(names)


def test_the_relay_services_are_unprivileged_and_outlast_their_drain() -> None:
    """Non-root, read-only, no capabilities; 45 s before SIGKILL (drain steps of 10 s)."""
    for name, service in services().items():
        assert service["user"].split(":")[0] not in {"0", "root"}, name
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        grace = int(service["stop_grace_period"].removesuffix("s"))
        assert grace >= 45, name


def test_the_compose_gateways_limits_carry_the_rate_it_expects() -> None:
    """The gateway's limits pass the sizing check for its --expected-rps over its members."""
    (gateway,) = [s for s in services().values() if s.get("command", [""])[0] == "gateway"]
    args = gateway["command"]

    def value(flag: str) -> str:
        return str(args[args.index(flag) + 1])

    members = value("--members").split(",")
    assert members == [f"node-{i}" for i in range(4)]

    assert (
        sizing.shortfalls(
            RateLimit.parse(value("--node-rate")),
            RateLimit.parse(value("--global-rate")),
            members=len(members),
            f=(len(members) - 1) // 3,
            expected_rps=float(value("--expected-rps")),
        )
        == []
    )


# --- Dockerfile ---------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_parses_the_dockerfile_and_finds_nothing_to_fix() -> None:
    """The Haskell Dockerfile linter (Docker's grammar, best-practice rules) reports nothing."""
    proc = hadolint(DOCKERFILE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_refuses_a_broken_dockerfile(tmp_path: Path) -> None:
    """The check above can fail: a misspelled instruction, or a root final stage, is reported."""
    typo = tmp_path / "typo.Dockerfile"
    typo.write_text(DOCKERFILE.read_text().replace("\nWORKDIR /data", "\nWORKDR /data"))
    assert hadolint(typo).returncode == 1
    root = tmp_path / "root.Dockerfile"
    root.write_text(DOCKERFILE.read_text().replace("USER 10001:10001", "USER root"))
    proc = hadolint(root)
    assert proc.returncode == 1
    assert "DL3002" in proc.stdout  # last USER should not be root


def test_the_image_is_built_in_stages_and_runs_as_a_non_root_user() -> None:
    """At least two FROMs; the last stage's USER is a numeric non-zero uid."""
    steps = instructions()
    starts = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(starts) >= 2
    final = steps[starts[-1] :]
    users = [rest for word, rest in final if word == "USER"]
    assert users
    uid = users[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert any(word == "COPY" and "--from=build" in rest for word, rest in final)


def test_the_image_installs_exactly_the_pinned_dependencies() -> None:
    """pip installs the project with constraints.txt, which the build copies in."""
    steps = instructions()
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    assert re.search(r"pip install --constraint constraints\.txt \.", runs)
    copied = [rest for word, rest in steps if word == "COPY" and "--from" not in rest]
    assert any("constraints.txt" in rest.split() for rest in copied)


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    """COPY sources exist at the repository root and the .dockerignore lets them through."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for word, rest in instructions():
        if word != "COPY" or "--from" in rest:
            continue
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in allowed, source


def test_the_images_entrypoint_and_default_command_are_real() -> None:
    """ENTRYPOINT is the `relay` console script of pyproject.toml; CMD parses with the CLI."""
    steps = dict(instructions())
    entrypoint = yaml.safe_load(steps["ENTRYPOINT"])
    command = yaml.safe_load(steps["CMD"])
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["relay"]
    assert "relay" in scripts
    assert command == ["--help"]
    assert_help_works([()])


def test_the_package_built_from_the_images_context_carries_every_file_it_ships(
    tmp_path: Path,
) -> None:
    """What the Dockerfile copies, built as a wheel (as its pip install does): every data file
    of workers/ and schemas/ is in it, and the `relay` entry point."""
    context = tmp_path / "context"
    for word, rest in instructions():
        if word == "COPY" and "--from" not in rest:
            *sources, _ = rest.split()
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(
                        path, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    context.mkdir(exist_ok=True)
                    shutil.copy(path, context / source)
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [
            str(BIN / "pip"),
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
        assert "relay = workers.cli:main" in archive.read(entry_points).decode()
    tracked = subprocess.run(
        ["git", "ls-files", "workers", "schemas"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    data = [name for name in tracked if not name.endswith((".py", ".pyi"))]
    assert data
    assert [name for name in data if name not in names] == []


def _engine() -> str | None:
    """Why no image can be built here, or None when a container engine answers."""
    if shutil.which("docker") is None:
        return "no docker client"
    proc = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return (
            f"no container engine answers (docker info: {lines[-1] if lines else proc.returncode})"
        )
    return None


def test_the_image_builds_and_its_relay_answers() -> None:
    """Where an engine runs: build the image, run `relay --help` in it as its user."""
    reason = _engine()
    if reason is not None:
        pytest.skip(reason)
    tag = "confidential-relay:test"
    build = ["docker", "build", "-f", str(DOCKERFILE), "-t", tag, str(ROOT)]
    proc = subprocess.run(build, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = subprocess.run(
        ["docker", "run", "--rm", tag, "--help"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert "worker" in run.stdout
    whoami = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shlex.split(whoami.stdout) == ["10001"]
