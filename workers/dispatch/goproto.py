"""Moved to `workers.protocol.goproto` (the Workflow-DON check decodes protobuf too); kept so
the dispatch actors' imports stay as they are."""

from __future__ import annotations

from workers.protocol.goproto import (
    ERR_DECODE,
    ERR_DEPTH,
    ERR_UTF8,
    GoProtoError,
    check_capability_request,
)

__all__ = ["ERR_DECODE", "ERR_DEPTH", "ERR_UTF8", "GoProtoError", "check_capability_request"]
