"""The G3 forwarding rule (PROTOCOL 10.10): when the bundling gateway forwards, fails or waits.

Pure: counts in, a decision out; the handler applies it on every node response, from the sweep
once a request's quorum-grace deadline has passed, and at expiry. The gateway checks no
signature (the enclave does, 10.6): "signed" means "decodes as a signed result".

One deliberate difference, as in G0' (docs/gateway.md): `remaining` counts only the members the
request could still reach, so a node whose send failed (no responders) is not waited for.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.gateway.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class Counts:
    """What one request has collected: `reachable` members in all, of `members`."""

    signed: int
    errors: int
    undecodable: int
    members: int
    reachable: int

    @property
    def collected(self) -> int:
        return self.signed + self.errors + self.undecodable


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the bundle of the signed responses collected so far."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Keep collecting; `arm_grace` once F+1 signed responses are in (first time only)."""

    arm_grace: bool


@dataclass(frozen=True, slots=True)
class Fail:
    code: ErrorCode
    message: str


Decision = Forward | Wait | Fail


def decide(counts: Counts, f: int, *, expired: bool) -> Decision:
    """The rules of 10.10, checked in order."""
    needed = f + 1
    collected = counts.collected
    remaining = 0 if expired else max(0, counts.reachable - collected)
    max_possible = counts.signed + remaining
    if counts.signed >= 2 * f + 1:
        return Forward()
    if remaining == 0 and counts.signed >= needed:
        return Forward()
    if max_possible < needed:
        if expired:
            return Fail(
                ErrorCode.RequestTimeoutError,
                f"request expired: {counts.signed} signed relay responses, need at least"
                f" {needed} to reach quorum (collected={collected} nodes={counts.members}"
                f" unanswered={counts.members - collected} errors={counts.errors}"
                f" undecodable={counts.undecodable})",
            )
        return Fail(
            ErrorCode.FatalError,
            f"relay quorum unreachable: {counts.signed} signed responses, at most {max_possible}"
            f" possible, need {needed} (collected={collected} nodes={counts.members}"
            f" remaining={remaining} errors={counts.errors} undecodable={counts.undecodable})",
        )
    return Wait(arm_grace=counts.signed >= needed)


def grace_seconds(grace_s: float, request_timeout_s: float) -> float:
    """Upstream's clamp: negative is 0 (grace off), at most the request timeout."""
    return min(max(grace_s, 0.0), request_timeout_s)
