"""The errors Go's `encoding/json` returns, with their exact `Error()` texts.

The texts go on the wire (as -32602 messages), so `message` is always what Go prints.
"""

from __future__ import annotations


class GoJSONError(ValueError):
    """Any Go `encoding/json` failure; `message` is Go's `err.Error()` text, byte for byte."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class GoSyntaxError(GoJSONError):
    """`*json.SyntaxError`: the text is not JSON. `offset` counts bytes read, as Go's does."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class GoUnmarshalTypeError(GoJSONError):
    """`*json.UnmarshalTypeError`: a JSON value of the wrong kind for its Go field.

    `struct` and `field` are Go's error context: the innermost struct type being filled and the
    dot-joined JSON key path from the outermost struct (array indices are not part of it).
    """

    def __init__(self, value: str, go_type: str, *, struct: str = "", field: str = "") -> None:
        if struct or field:
            message = (
                f"json: cannot unmarshal {value} into Go struct field {struct}.{field}"
                f" of type {go_type}"
            )
        else:
            message = f"json: cannot unmarshal {value} into Go value of type {go_type}"
        super().__init__(message)
        self.value = value
        self.go_type = go_type
        self.struct = struct
        self.field = field


class GoMarshalError(GoJSONError):
    """`json.Marshal` failed (only a `json.RawMessage` holding invalid JSON can make it fail)."""
