"""`relay health`: the exec probe (compose, systemd, images without curl) for one process's
`/livez` or `/readyz` (docs/operations.md): exit 0 when it answered 200, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from workers.runtime.health import host_from_env, port_from_env


def probe(host: str, port: int, *, ready: bool, timeout_s: float) -> tuple[bool, str]:
    """Ask one process; (healthy, what it said or why there was no answer)."""
    path = "/readyz" if ready else "/livez"
    url = f"http://{host}:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200, resp.read(4096).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read(4096).decode("utf-8", "replace")
    except (OSError, ValueError) as exc:  # refused, timed out (wedged), bad address
        return False, f"no answer from {url} within {timeout_s:g}s: {exc}"


def _cmd(args: argparse.Namespace) -> int:
    try:
        port = port_from_env(args.port)
    except ValueError as exc:
        print(f"relay health: {exc}", file=sys.stderr)
        return 2
    if port is None:
        print("relay health: no port (--port or RELAY_HEALTH_PORT)", file=sys.stderr)
        return 2
    ok, said = probe(host_from_env(args.host), port, ready=args.ready, timeout_s=args.timeout)
    print(said.strip(), file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("health", help="probe one process's /livez (or /readyz): exit 0 healthy")
    p.add_argument("--port", type=int, help="its health port (default: $RELAY_HEALTH_PORT)")
    p.add_argument("--host", help="its health address (default: $RELAY_HEALTH_HOST or 127.0.0.1)")
    p.add_argument("--ready", action="store_true", help="ask /readyz instead of /livez")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    p.set_defaults(func=_cmd)


def main() -> int:
    """`python -m workers.cli.health --port P [--ready]`: the same probe without loading every
    `relay` command, for probes that run often."""
    parser = argparse.ArgumentParser(prog="python -m workers.cli.health", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["health", *sys.argv[1:]])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
