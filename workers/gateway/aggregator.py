"""The G0' F+1 quorum decision over the node responses collected for one request (PROTOCOL 1.2 step 7).

Pure: no clock, no I/O. Digests are computed once when a response is stored (see `envelope.digest`)
and passed in, so re-running the decision on every new response stays cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("relay.gateway.aggregator")


@dataclass(frozen=True, slots=True)
class Collected:
    """One node's response: its digest, or None when the digest could not be computed."""

    digest: str | None


@dataclass(frozen=True, slots=True)
class Quorum:
    """F+1 nodes agree: `node` is the first node, in address order, that sent the winning digest."""

    digest: str
    node: str
    count: int


@dataclass(frozen=True, slots=True)
class Insufficient:
    """Quorum is still possible: keep waiting."""

    collected: int


class QuorumUnobtainable(Exception):
    """No digest can reach F+1 any more, whatever the remaining nodes answer."""

    def __init__(self, required: int, max_count: int, remaining: int) -> None:
        super().__init__(
            f"quorum unobtainable: requiredQuorum={required}, "
            f"maxShaToCount={max_count}, remainingResponses={remaining}"
        )
        self.required = required
        self.max_count = max_count
        self.remaining = remaining


Decision = Quorum | Insufficient


def aggregate(responses: Mapping[str, Collected], *, f: int, expected: int) -> Decision:
    """Decide for one request; raises QuorumUnobtainable as soon as quorum cannot be reached.

    `responses` maps node address to its collected response; `expected` is how many responses
    the request can get in total (the DON size, minus nodes the fan-out could not reach).
    """
    required = f + 1
    if len(responses) < required:
        return Insufficient(collected=len(responses))
    by_digest: dict[str, list[str]] = {}
    for node, item in responses.items():
        if item.digest is None:
            continue  # skipped, but still counted as collected (upstream does the same)
        by_digest.setdefault(item.digest, []).append(node)
    qualifying = [d for d, nodes in by_digest.items() if len(nodes) >= required]
    if qualifying:
        # G0': the smallest qualifying digest, answered by the first node in sorted address order.
        winner = min(qualifying)
        nodes = by_digest[winner]
        return Quorum(digest=winner, node=min(nodes), count=len(nodes))
    max_count = max((len(nodes) for nodes in by_digest.values()), default=0)
    remaining = max(0, expected - len(responses))
    if max_count + remaining < required:
        log.warning(
            "quorum unattainable for request: requiredQuorum=%d remainingResponses=%d maxShaToCount=%d",
            required,
            remaining,
            max_count,
        )
        raise QuorumUnobtainable(required, max_count, remaining)
    return Insufficient(collected=len(responses))
