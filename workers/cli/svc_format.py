"""What `relay svc` prints: `nats.micro` INFO and STATS answers merged per service instance.

Pure (no sockets): `merge` joins the answers of `$SRV.INFO` and `$SRV.STATS` by service id,
`render` makes the table. Answers are the micro protocol's JSON objects
(`io.nats.micro.v1.info_response` / `stats_response`); anything else is ignored.

On the relay's own services (`workers.runtime.bus.Service`): micro's handler there only accepts
a request and hands it to a task, so the service's stats handler puts in the tasks' figures:
`processing_time` runs from accept to the reply published, its average is over completed
requests, `num_errors` counts handler failures (`last_error` is the exception's type, never its
text), and the endpoint's `data` holds `in_flight`, `queued`, `expired` and `too_large`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from workers.cli.tail_format import terminal_safe

INFO_TYPE = "io.nats.micro.v1.info_response"
STATS_TYPE = "io.nats.micro.v1.stats_response"


def parse_answer(data: bytes, expected_type: str) -> dict[str, Any] | None:
    """One micro answer as a dict, or None when it is not JSON, not that type, or has no id."""
    try:
        doc = json.loads(data)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    if doc.get("type", expected_type) != expected_type:
        return None
    return doc


def _endpoint(info: Mapping[str, Any], stats: Mapping[str, Any]) -> dict[str, Any]:
    def pick(key: str, default: Any = None) -> Any:
        return info.get(key, stats.get(key, default))

    return {
        "name": pick("name", ""),
        "subject": pick("subject", ""),
        "queue_group": pick("queue_group", ""),
        "metadata": info.get("metadata") or {},
        "num_requests": stats.get("num_requests"),
        "num_errors": stats.get("num_errors"),
        "last_error": stats.get("last_error") or "",
        "processing_time": stats.get("processing_time"),
        "average_processing_time": stats.get("average_processing_time"),
        "data": stats.get("data"),
    }


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _named(endpoint: Mapping[str, Any]) -> bool:
    return isinstance(endpoint.get("name"), str)


def merge(
    infos: Iterable[Mapping[str, Any]], stats: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per service instance (by id), sorted by name, don, node, id.

    A service that answered only one of the two requests is still listed; the fields the other
    answer would have given are null. Endpoints are matched by name, in INFO order.
    """
    by_id_info = {doc["id"]: doc for doc in infos}
    by_id_stats = {doc["id"]: doc for doc in stats}
    services: list[dict[str, Any]] = []
    for sid in by_id_info.keys() | by_id_stats.keys():
        info = by_id_info.get(sid, {})
        stat = by_id_stats.get(sid, {})
        # An endpoint without a string name cannot be matched (and would not hash): skipped.
        info_eps = {ep["name"]: ep for ep in _dicts(info.get("endpoints")) if _named(ep)}
        stat_eps = {ep["name"]: ep for ep in _dicts(stat.get("endpoints")) if _named(ep)}
        names = list(info_eps) + [name for name in stat_eps if name not in info_eps]
        metadata = info.get("metadata") or stat.get("metadata") or {}
        services.append(
            {
                "name": info.get("name", stat.get("name", "")),
                "id": sid,
                "version": info.get("version", stat.get("version", "")),
                "description": info.get("description") or "",
                "metadata": metadata if isinstance(metadata, dict) else {},
                "started": stat.get("started"),
                "endpoints": [
                    _endpoint(info_eps.get(name, {}), stat_eps.get(name, {})) for name in names
                ],
            }
        )
    services.sort(
        key=lambda s: (
            str(s["name"]),
            str(s["metadata"].get("don", "")),
            str(s["metadata"].get("node", "")),
            s["id"],
        )
    )
    return services


def format_duration(ns: Any) -> str:
    """Nanoseconds, human-sized: `850ns`, `12.3us`, `4.56ms`, `1.20s`; `-` when unknown."""
    if not isinstance(ns, int | float) or isinstance(ns, bool):
        return "-"
    if ns < 1_000:
        return f"{ns:.0f}ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f}us"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f}ms"
    return f"{ns / 1e9:.2f}s"


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[list[str]], indent: str) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def render(services: list[dict[str, Any]], *, wait_s: float) -> str:
    """The human view: one block per service instance, its endpoints as an aligned table."""
    if not services:
        return f"no nats.micro service answered within {wait_s:g}s\n"
    lines = [f"{len(services)} service instance(s) answered within {wait_s:g}s"]
    header = ["ENDPOINT", "SUBJECT", "QUEUE", "REQUESTS", "ERRORS", "AVG TIME", "LAST ERROR"]
    for svc in services:
        # Every field is what some service on the bus said: made safe for the terminal.
        safe = {key: terminal_safe(str(svc[key])) for key in ("name", "version", "id")}
        meta = " ".join(
            f"{terminal_safe(str(k))}={terminal_safe(str(v))}"
            for k, v in sorted(svc["metadata"].items(), key=lambda kv: str(kv[0]))
        )
        lines.append("")
        lines.append(
            f"{safe['name']} {safe['version']}  id {safe['id']}" + (f"  {meta}" if meta else "")
        )
        about = terminal_safe(str(svc["description"]))
        if svc["started"]:
            started = terminal_safe(str(svc["started"]))
            about = f"{about}; started {started}" if about else f"started {started}"
        if about:
            lines.append(f"  {about}")
        if not svc["endpoints"]:
            lines.append("  (no endpoints)")
            continue
        rows = [header] + [
            [
                terminal_safe(str(ep["name"])),
                terminal_safe(str(ep["subject"])),
                terminal_safe(str(ep["queue_group"])),
                _count(ep["num_requests"]),
                _count(ep["num_errors"]),
                format_duration(ep["average_processing_time"]),
                terminal_safe(str(ep["last_error"])),
            ]
            for ep in svc["endpoints"]
        ]
        lines.extend(_table(rows, "  "))
    return "\n".join(lines) + "\n"
