"""Structured logs for every relay process: one JSON object per line on stderr.

The full internal error of a request goes to the log only (PROTOCOL 5.6: "request error" with
`errorCode` and `err`), and that detail travels in the record's `extra` fields, which Python's
default text format drops. This formatter keeps them: `ts`, `level`, `logger`, `msg`, the actor,
every extra field, the traceback as `exc`, and `trace_id` when tracing is on and the line is
logged inside a request's span. Field names that look like credentials or secret
material are written as "[redacted]", a guard against a future log call that forgets the rule.

`RELAY_LOG_FORMAT=text` switches to a plain human format (extra fields appended as key=value);
`RELAY_LOG_LEVEL` sets the level.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
from typing import Any

from workers.runtime import tracing

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# Field names that may hold a secret value; matched anywhere in the name (`shares`, `nkey_seed`).
_SENSITIVE = re.compile(
    r"pass|secret|private|plaintext|credential|seed|share|nkey|token|jwt", re.IGNORECASE
)
REDACTED = "[redacted]"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[key] = REDACTED if _SENSITIVE.search(key) else value
    return out


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


class JsonFormatter(logging.Formatter):
    def __init__(self, actor: str) -> None:
        super().__init__()
        self._actor = actor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "actor": self._actor,
        }
        trace_id = tracing.current_trace_id()  # None unless tracing is on
        if trace_id is not None:
            entry["trace_id"] = trace_id
        for key, value in _extras(record).items():
            entry.setdefault(key, _plain(value))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, actor: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {actor} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={_plain(v)!r}" for k, v in _extras(record).items())
        return f"{line} {extras}" if extras else line


def configure(actor: str, *, level: str | None = None, default_level: str = "INFO") -> None:
    """Send this process's logs to stderr, structured, from the root logger down.

    The level: `level` if given (a command-line flag), else `RELAY_LOG_LEVEL`, else the default.
    """
    style = os.environ.get("RELAY_LOG_FORMAT", "json")
    if style not in {"json", "text"}:
        raise ValueError(f"RELAY_LOG_FORMAT must be 'json' or 'text', got {style!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(actor) if style == "json" else TextFormatter(actor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("RELAY_LOG_LEVEL") or default_level).upper())
