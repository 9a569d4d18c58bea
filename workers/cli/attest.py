"""`relay attest ...`: offline attestation tools (filled in by the attestation work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("attest", help="offline attestation tools")
