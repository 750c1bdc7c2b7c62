"""JSON error replies and the endpoint guard shared by the hub's HTTP APIs.

Every API returns errors as {"error": code, "message": text}. The `code` is
stable for programs, and `message` names the value and the fix. A fault in
the hub returns 500 with an id to find in the log, and nothing else."""

from __future__ import annotations

import functools
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
# authorize(request, action) -> bool (or awaitable bool); may raise
# HTTPException(401) when the request carries no valid token.
Authorize = Callable[[Request, str], Any]
# Builds the reply to an error the API handles; None makes it a fault.
ErrorReply = Callable[[Exception], Response | None]


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"Retry-After": "5"} if status == 503 else None
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers=headers
    )


def guard(
    action: str | None, authorize: Authorize, known_error: ErrorReply
) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint: check `action` with `authorize`, reply to the errors
    that `known_error` handles, and turn any other exception into a logged
    500."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            try:
                if action is not None:
                    allowed = authorize(request, action)
                    if inspect.isawaitable(allowed):
                        allowed = await allowed
                    if not allowed:
                        return error_response(
                            403,
                            "forbidden",
                            f"this account may not perform {action!r}; "
                            "ask an administrator for the role that allows it",
                        )
                return await endpoint(request)
            except HTTPException as error:
                code = {401: "unauthorized", 403: "forbidden"}.get(
                    error.status_code, "error"
                )
                return error_response(error.status_code, code, str(error.detail))
            except Exception as error:
                reply = known_error(error)
                if reply is not None:
                    return reply
                error_id = uuid.uuid4().hex[:12]
                logger.exception(
                    "internal error: id=%s method=%s path=%s",
                    error_id,
                    request.method,
                    request.url.path,
                )
                return error_response(
                    500,
                    "internal",
                    f"internal error; give the hub operator this id: {error_id}",
                )

        return wrapper

    return decorate
