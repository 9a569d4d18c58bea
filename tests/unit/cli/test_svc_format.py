"""What `relay svc` makes of nats.micro INFO and STATS answers: merged per instance, tabulated."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers.cli.svc_format import (
    INFO_TYPE,
    STATS_TYPE,
    format_duration,
    merge,
    parse_answer,
    render,
)


def info(sid: str, name: str, node: str, *endpoints: str) -> dict[str, Any]:
    return {
        "type": INFO_TYPE,
        "id": sid,
        "name": name,
        "version": "0.1.0",
        "description": f"{name} on {node}",
        "metadata": {"don": "relay-don", "node": node},
        "endpoints": [
            {
                "name": ep,
                "subject": f"relay.v1.relay-don.{node}.{ep}",
                "queue_group": "q",
                "metadata": {},
            }
            for ep in endpoints
        ],
    }


def stats(sid: str, name: str, **requests: int) -> dict[str, Any]:
    return {
        "type": STATS_TYPE,
        "id": sid,
        "name": name,
        "version": "0.1.0",
        "started": "2026-01-03T10:00:00.000Z",
        "metadata": {},
        "endpoints": [
            {
                "name": ep,
                "subject": f"s.{ep}",
                "queue_group": "q",
                "num_requests": n,
                "num_errors": 0,
                "last_error": "",
                "processing_time": 2_000 * n,
                "average_processing_time": 2_000,
                "data": None,
            }
            for ep, n in requests.items()
        ],
    }


def test_info_and_stats_are_joined_by_service_id_and_endpoint_name() -> None:
    """One entry per instance: INFO's description and metadata, STATS' counters per endpoint."""
    merged = merge(
        [info("A", "relay-verifier", "node-0", "verify")],
        [stats("A", "relay-verifier", verify=5)],
    )
    assert merged == [
        {
            "name": "relay-verifier",
            "id": "A",
            "version": "0.1.0",
            "description": "relay-verifier on node-0",
            "metadata": {"don": "relay-don", "node": "node-0"},
            "started": "2026-01-03T10:00:00.000Z",
            "endpoints": [
                {
                    "name": "verify",
                    "subject": "relay.v1.relay-don.node-0.verify",
                    "queue_group": "q",
                    "metadata": {},
                    "num_requests": 5,
                    "num_errors": 0,
                    "last_error": "",
                    "processing_time": 10_000,
                    "average_processing_time": 2_000,
                    "data": None,
                }
            ],
        }
    ]


def test_instances_are_sorted_by_name_then_node() -> None:
    """Replicas of one service sit together, ordered by their node metadata."""
    merged = merge(
        [
            info("Z", "relay-verifier", "node-1", "verify"),
            info("Y", "relay-ingress", "node-0", "rpc"),
            info("X", "relay-verifier", "node-0", "verify"),
        ],
        [],
    )
    assert [(s["name"], s["metadata"]["node"]) for s in merged] == [
        ("relay-ingress", "node-0"),
        ("relay-verifier", "node-0"),
        ("relay-verifier", "node-1"),
    ]


def test_a_service_that_only_answered_one_request_is_still_listed() -> None:
    """Without STATS the counters are null; without INFO the endpoints come from STATS."""
    only_info, only_stats = merge([info("A", "a", "node-0", "rpc")], [stats("B", "b", get=1)])
    assert only_info["endpoints"][0]["num_requests"] is None
    assert only_info["started"] is None
    assert only_stats["endpoints"][0]["subject"] == "s.get"
    assert only_stats["description"] == ""


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"not json", None),
        (b"[]", None),
        (b'{"name": "no id"}', None),
        (json.dumps({"type": STATS_TYPE, "id": "A"}).encode(), None),
        (json.dumps({"type": INFO_TYPE, "id": "A"}).encode(), {"type": INFO_TYPE, "id": "A"}),
        (b'{"id": "A"}', {"id": "A"}),
    ],
)
def test_only_answers_of_the_expected_type_are_kept(
    data: bytes, expected: dict[str, Any] | None
) -> None:
    """Garbage, an answer without an id, or a stats answer on the info inbox are dropped."""
    assert parse_answer(data, INFO_TYPE) == expected


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (850, "850ns"),
        (12_345, "12.3us"),
        (4_560_000, "4.56ms"),
        (1_200_000_000, "1.20s"),
        (None, "-"),
        (True, "-"),
    ],
)
def test_durations_are_printed_at_a_readable_scale(ns: Any, text: str) -> None:
    """Nanosecond counters become ns, us, ms or s; unknown ones a dash."""
    assert format_duration(ns) == text


def test_the_table_shows_name_metadata_and_aligned_endpoints() -> None:
    """Each instance has a heading line and a column-aligned endpoint table."""
    merged = merge(
        [info("A", "relay-registry", "node-0", "measurements", "don")],
        [stats("A", "relay-registry", measurements=12, don=3)],
    )
    lines = render(merged, wait_s=0.3).splitlines()
    assert lines[0] == "1 service instance(s) answered within 0.3s"
    assert lines[2] == "relay-registry 0.1.0  id A  don=relay-don node=node-0"
    assert lines[3] == "  relay-registry on node-0; started 2026-01-03T10:00:00.000Z"
    header, first, second = lines[4:7]
    assert header.split() == [
        "ENDPOINT",
        "SUBJECT",
        "QUEUE",
        "REQUESTS",
        "ERRORS",
        "AVG",
        "TIME",
        "LAST",
        "ERROR",
    ]
    assert first.split() == [
        "measurements",
        "relay.v1.relay-don.node-0.measurements",
        "q",
        "12",
        "0",
        "2.0us",
    ]
    assert second.split() == ["don", "relay.v1.relay-don.node-0.don", "q", "3", "0", "2.0us"]
    assert header.index("SUBJECT") == first.index("relay.") == second.index("relay.")


def test_no_answer_is_said_plainly() -> None:
    """An empty bus is one line naming the wait, not an empty table."""
    assert render([], wait_s=0.5) == "no nats.micro service answered within 0.5s\n"


def test_what_services_say_cannot_drive_the_operators_terminal() -> None:
    """Escape sequences, C1 controls, bidi overrides and newlines in any field are shown as
    visible escapes: any actor may answer $SRV, and its text lands on an operator's screen."""
    evil = "x\x1b]0;pwned\x07\x1b[2J\x9b2J\u202e\nforged line"
    answer = info("E", evil, "node-0", "verify")
    answer["description"] = evil
    answer["metadata"]["note"] = evil
    answer["endpoints"][0]["subject"] = evil
    text = render(merge([answer], []), wait_s=0.3)
    for raw in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert raw not in text
    assert "forged line" not in text.splitlines()[0]
    assert all(not line.startswith("forged line") for line in text.splitlines())
    assert "\\u001b]0;pwned" in text


def test_an_endpoint_whose_name_is_not_a_string_is_skipped_not_a_crash() -> None:
    """A malformed answer (a list as the endpoint name) cannot break the listing of the rest."""
    answer = info("B", "relay-bad", "node-0", "verify")
    answer["endpoints"].append({"name": ["x"], "subject": "s", "queue_group": "q"})
    (service,) = merge([answer], [])
    assert [ep["name"] for ep in service["endpoints"]] == ["verify"]
