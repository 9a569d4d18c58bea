"""Gateway sizing: which rate limits carry a request rate through a relay DON of N nodes.

The two token buckets (`ratelimit.py`, PROTOCOL 5.3) count **node responses**, not requests:
- the per-node bucket is charged for every message a member sends, so at R requests/s each node
  uses R tokens/s: `--node-rate` below R drops honest answers whatever the burst;
- the global bucket is charged for a member's first answer to a request still waiting for
  quorum (`handler.py`), so between F+1 (all agree: decided at the (F+1)-th, the later ones find
  no request) and N (answers that disagree, so more are needed before F+1 match) tokens per
  request: `--global-rate` below (F+1) x R cannot carry R.

A dropped answer is not retried: a request whose answers were dropped waits for the others and,
when fewer than F+1 matching ones got through, expires after `--request-timeout` (that is the
"110 of 400 answered at 40 req/s" of issue 14 with upstream's defaults, 10rps and 50rps).

The recommendation adds headroom over those floors (docs/gateway.md, "Sizing", has the measured
table): the per-node rate twice R, since a node that stalled for a moment (GC, CPU contention)
answers its backlog at once; the global rate N x R, the most that honest members can ever be
charged at R; bursts of one second of traffic (R per node, N x R global), at least upstream's 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from workers.gateway.ratelimit import RateLimit

NODE_HEADROOM = 2.0
MIN_BURST = 10


@dataclass(frozen=True, kw_only=True)
class Sizing:
    node_rate: RateLimit
    global_rate: RateLimit


def _check(expected_rps: float, members: int, f: int) -> None:
    if not (math.isfinite(expected_rps) and expected_rps > 0):
        raise ValueError(
            f"the expected rate must be a number of requests/s > 0, got {expected_rps}"
        )
    if members < 1 or not 0 <= f < members:
        raise ValueError(f"a DON of {members} members cannot have F={f}")


def recommended(expected_rps: float, members: int, f: int) -> Sizing:
    """Limits that carry `expected_rps` requests/s through a DON of `members` nodes, with headroom."""
    _check(expected_rps, members, f)
    node_rate = math.ceil(expected_rps * NODE_HEADROOM)
    global_rate = math.ceil(expected_rps * members)
    return Sizing(
        node_rate=RateLimit(rate=float(node_rate), burst=max(MIN_BURST, math.ceil(expected_rps))),
        global_rate=RateLimit(rate=float(global_rate), burst=max(MIN_BURST, global_rate)),
    )


def carried_rps(node_rate: RateLimit, global_rate: RateLimit, f: int) -> float:
    """The highest steady request rate these limits can carry at all (every node answering,
    all agreeing): above it, answers are dropped and requests expire."""
    return min(node_rate.rate, global_rate.rate / (f + 1))


def shortfalls(
    node_rate: RateLimit, global_rate: RateLimit, *, members: int, f: int, expected_rps: float
) -> list[str]:
    """Why these limits will not carry `expected_rps` (empty when they will), one line each,
    naming the limit to set."""
    _check(expected_rps, members, f)
    want = recommended(expected_rps, members, f)
    problems = []
    if node_rate.rate < expected_rps:
        problems.append(
            f"--node-rate {node_rate} cannot carry {expected_rps:g} req/s: every node answers"
            f" every request, so answers beyond {node_rate.rate:g}/s per node are dropped and"
            f" requests expire (set --node-rate {want.node_rate})"
        )
    elif node_rate.rate < want.node_rate.rate or node_rate.burst < want.node_rate.burst:
        problems.append(
            f"--node-rate {node_rate} leaves no headroom at {expected_rps:g} req/s: a node that"
            f" answers a backlog at once has answers dropped (set --node-rate {want.node_rate})"
        )
    floor = (f + 1) * expected_rps
    if global_rate.rate < floor:
        problems.append(
            f"--global-rate {global_rate} cannot carry {expected_rps:g} req/s: each request"
            f" takes at least F+1={f + 1} answers, {floor:g}/s in all, so answers are dropped"
            f" and requests expire (set --global-rate {want.global_rate})"
        )
    elif global_rate.rate < want.global_rate.rate or global_rate.burst < want.global_rate.burst:
        problems.append(
            f"--global-rate {global_rate} leaves no headroom at {expected_rps:g} req/s with"
            f" {members} members: up to {members} answers per request are charged when"
            f" answers disagree (set --global-rate {want.global_rate})"
        )
    return problems
