"""The hub's exception tree.

Every error a client may see is a `HubError`. Its `code` is stable and meant for
programs (it is the `code` field of the signaling `error` message), and its
message is for people: it states what failed, on which value, and what to do.
Errors that are not a `HubError` are faults in the hub and reach a client only
as the code "internal".
"""

from __future__ import annotations

import re

_CODE_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


class HubError(Exception):
    """Base of every error that is reported to a client with a wire code."""

    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_message(self, request_id: str | None = None) -> dict[str, str]:
        """Build the signaling `error` message for this error.

        `request_id` is the `id` of the client request that failed, if it had one.
        """
        message = {"type": "error", "code": self.code, "message": self.message}
        if request_id is not None:
            message["id"] = request_id
        return message


class ProtocolError(HubError):
    """A client message is malformed, out of order or out of range.

    The code is "bad-message" unless another protocol code is given, for
    example "bad-json", "unknown-type" or "bad-sdp".
    """

    code = "bad-message"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            if not isinstance(code, str) or not _CODE_PATTERN.fullmatch(code):
                raise ValueError(
                    f"invalid error code {code!r}; use lowercase words joined by "
                    "hyphens, such as 'bad-sdp'"
                )
            self.code = code


class Unauthorized(HubError):
    """A token is missing, invalid, expired, used up or for another room."""

    code = "unauthorized"


class Forbidden(HubError):
    """The participant's role does not allow the requested action."""

    code = "forbidden"


class NotFound(HubError):
    """A unit, room, peer, track or other id does not exist."""

    code = "not-found"


class Conflict(HubError):
    """The request clashes with the current state, such as a locked room."""

    code = "conflict"
