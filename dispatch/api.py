"""JSON HTTP API for dispatch tasks and session records (Starlette).

The app mounts the routes of `make_routes` under ``/api``. Every error is a
JSON object ``{"error": CODE, "message": TEXT}`` where CODE is stable for
programs and TEXT names the field and the fix. A database outage is a 503
and never leaves a half-stored task, because a task is stored in one
transaction and acknowledged only after its commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from dispatch import export, records, tasks
from dispatch.db import (
    Conflict,
    DispatchError,
    Forbidden,
    InvalidInput,
    NotFound,
    Store,
    StoreUnavailable,
)
from dispatch.models import TaskStatus
from dispatch.tasks import Notify, TaskQuery, UnitRooms
from hub.http import Endpoint, error_response, guard

logger = logging.getLogger(__name__)

Authorize = Callable[[Request, str], "bool | Awaitable[bool]"]
"""Decides whether `request` may perform `action` (e.g. "tasks.create"). It
returns (or awaits to) a bool. It may also raise starlette's HTTPException,
whose status and detail are then sent (401 for a missing token)."""

Clock = Callable[[], datetime]

# Actions passed to `authorize`.
ACTIONS = (
    "tasks.create",
    "tasks.read",
    "tasks.update",
    "tasks.remind",
    "tasks.export",
    "sessions.read",
)

MAX_BODY_BYTES = 64 * 1024

_STATUS_BY_ERROR: list[tuple[type[DispatchError], int]] = [
    (InvalidInput, 400),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (StoreUnavailable, 503),
]


def allow_all(request: Request, action: str) -> bool:
    return True


def _dispatch_error_response(error: DispatchError) -> JSONResponse:
    for cls, status in _STATUS_BY_ERROR:
        if isinstance(error, cls):
            return error_response(status, error.code, error.message)
    return error_response(400, error.code, error.message)


def _known_error(error: Exception) -> Response | None:
    if isinstance(error, DispatchError):
        return _dispatch_error_response(error)
    return None


def _guard(action: str | None, authorize: Authorize) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint: check `action` with `authorize`, then turn service
    errors into JSON error responses."""
    return guard(action, authorize, _known_error)


async def _json_body(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(
            f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(
            f"the request body is not valid JSON ({error}); send a JSON object "
            "with Content-Type: application/json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidInput(
            f"the request body must be a JSON object, got {type(body).__name__}"
        )
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            f"expected only: {', '.join(allowed)}",
            unknown[0],
        )
    return body


# Query string parsing.


# Largest id a 64-bit signed integer column holds (SQLite and PostgreSQL).
MAX_ID = 2**63 - 1


def _int_param(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(
            f"query parameter {name!r} is {value!r}; expected an integer", name
        ) from None
    if abs(number) > MAX_ID:
        raise InvalidInput(
            f"query parameter {name!r} is {value}; expected at most {MAX_ID}", name
        )
    return number


def _path_id(request: Request, name: str) -> int:
    """Return an integer path parameter; ids past the database's 64-bit range
    cannot exist, so they are not found rather than a fault."""
    number = request.path_params[name]
    if not 0 < number <= MAX_ID:
        kind = name.removesuffix("_id")
        raise NotFound(f"{kind} {number} not found; ids run from 1 to {MAX_ID}")
    return number


def _bool_param(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise InvalidInput(
        f"query parameter {name!r} is {value!r}; expected true or false", name
    )


def _time_param(
    request: Request, name: str, zone: Any, *, end: bool
) -> datetime | None:
    """Parse a from/to bound. A date (2025-11-30) is a local day in `zone`:
    as `from` it means that day's start, as `to` the start of the next day,
    so the day is included. A time with a UTC offset is taken as is."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is not None and len(value) == 10:
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise InvalidInput(
            f"query parameter {name!r} is {value!r}; expected a date such as "
            "2025-11-30 or a time with a UTC offset such as "
            "2025-11-30T18:00:00+08:00",
            name,
        )
    return moment.astimezone(UTC)


def _month_range(value: str, zone: Any) -> tuple[datetime, datetime]:
    try:
        first = datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise InvalidInput(
            f"query parameter 'month' is {value!r}; expected YYYY-MM, e.g. 2025-11",
            "month",
        ) from None
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    start = datetime.combine(first, time(), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(following, time(), tzinfo=zone).astimezone(UTC)
    return start, end


def _period(request: Request) -> tuple[Any, datetime | None, datetime | None]:
    """Return (zone, from, to) from the tz, month, from and to parameters."""
    tz_name = request.query_params.get("tz") or export.DEFAULT_TIMEZONE
    zone = export.load_timezone(tz_name)
    month = request.query_params.get("month")
    if month:
        if request.query_params.get("from") or request.query_params.get("to"):
            raise InvalidInput("send either 'month' or 'from'/'to', not both", "month")
        start, end = _month_range(month, zone)
        return zone, start, end
    start = _time_param(request, "from", zone, end=False)
    end = _time_param(request, "to", zone, end=True)
    return zone, start, end


def _task_query(request: Request, *, paged: bool = True) -> TaskQuery:
    _, start, end = _period(request)
    statuses = [
        part.strip()
        for part in (request.query_params.get("status") or "").split(",")
        if part.strip()
    ]
    query = TaskQuery(
        unit=request.query_params.get("unit") or None,
        subunits=bool(_bool_param(request, "subunits")),
        statuses=statuses,
        assigner_room=request.query_params.get("room") or None,
        session_id=_int_param(request, "session"),
        overdue=_bool_param(request, "overdue"),
        created_from=start,
        created_to=end,
    )
    if paged:
        query.limit = _int_param(request, "limit", 50) or 0
        query.offset = _int_param(request, "offset", 0) or 0
    query.check()
    return query


def _file_name(
    prefix: str, start: datetime | None, end: datetime | None, zone: Any
) -> str:
    parts = [prefix]
    if start is not None:
        parts.append(start.astimezone(zone).strftime("%Y%m%d"))
    if end is not None:
        last_day = (end - timedelta(microseconds=1)).astimezone(zone)
        parts.append(last_day.strftime("%Y%m%d"))
    return "-".join(parts)


def make_routes(
    store: Store,
    notify: Notify | None = None,
    *,
    authorize: Authorize | None = None,
    unit_rooms: UnitRooms | None = None,
    clock: Clock | None = None,
) -> list[BaseRoute]:
    """Return the routes of the dispatch API, to mount under ``/api``.

    `notify` receives live ``task-event`` pushes after each committed change
    (see `dispatch.tasks.push_event`). `authorize(request, action)` is
    called before each request with one of `ACTIONS` (default: allow all).
    `unit_rooms` maps an assignee unit to the rooms that see its pushes
    (default: the room named like the unit). `clock` returns the current
    aware time (default: the system clock in UTC).
    """
    check = authorize or allow_all
    now = clock or tasks.utcnow

    @_guard("tasks.create", check)
    async def create_task(request: Request) -> Response:
        body = await _json_body(request, tasks.CREATE_FIELDS)
        task, created = await tasks.create_task(
            store,
            body,
            idempotency_key=request.headers.get("idempotency-key"),
            notify=notify,
            unit_rooms=unit_rooms,
            now=now(),
        )
        headers = {"Location": f"{request.url.path.rstrip('/')}/{task['id']}"}
        return JSONResponse(task, status_code=201 if created else 200, headers=headers)

    @_guard("tasks.read", check)
    async def list_tasks(request: Request) -> Response:
        result = await tasks.list_tasks(store, _task_query(request), now=now())
        return JSONResponse(result)

    @_guard("tasks.read", check)
    async def get_task(request: Request) -> Response:
        task_id = _path_id(request, "task_id")
        return JSONResponse(await tasks.get_task(store, task_id, now=now()))

    @_guard("tasks.update", check)
    async def change_status(request: Request) -> Response:
        body = await _json_body(request, ("status", "note", "by", "room"))
        for name in ("status", "by"):
            if body.get(name) is None:
                raise InvalidInput(f"field {name!r} is required", name)
        task = await tasks.change_status(
            store,
            _path_id(request, "task_id"),
            body["status"],
            body["by"],
            body.get("note") or "",
            room=body.get("room"),
            notify=notify,
            unit_rooms=unit_rooms,
            now=now(),
        )
        return JSONResponse(task)

    @_guard("tasks.remind", check)
    async def add_reminder(request: Request) -> Response:
        body = await _json_body(request, ("by", "note"))
        for name in ("by", "note"):
            if body.get(name) is None:
                raise InvalidInput(f"field {name!r} is required", name)
        event = await tasks.add_reminder(
            store,
            _path_id(request, "task_id"),
            body["by"],
            body["note"],
            notify=notify,
            unit_rooms=unit_rooms,
            now=now(),
        )
        return JSONResponse(event, status_code=201)

    async def _export(request: Request) -> tuple[list[dict[str, Any]], Any, str, Any]:
        zone, start, end = _period(request)
        query = _task_query(request, paged=False)
        moment = now()
        rows = await export.export_rows(store, query, now=moment)
        name = _file_name("tasks", start, end, zone)
        return rows, (start, end, moment), name, zone

    @_guard("tasks.export", check)
    async def export_csv(request: Request) -> Response:
        rows, _, name, zone = await _export(request)
        # Rendering a month takes seconds; keep it off the event loop.
        content = await asyncio.to_thread(export.tasks_csv, rows, str(zone))
        return Response(
            content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    @_guard("tasks.export", check)
    async def export_xlsx(request: Request) -> Response:
        rows, (start, end, moment), name, zone = await _export(request)
        content = await asyncio.to_thread(
            export.tasks_xlsx, rows, str(zone), (start, end), moment
        )
        return Response(
            content,
            media_type=(
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            ),
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )

    @_guard("sessions.read", check)
    async def list_sessions(request: Request) -> Response:
        _, start, end = _period(request)
        result = await records.list_sessions(
            store,
            room=request.query_params.get("room") or None,
            kind=request.query_params.get("kind") or None,
            started_from=start,
            started_to=end,
            limit=_int_param(request, "limit", 50) or 0,
            offset=_int_param(request, "offset", 0) or 0,
        )
        return JSONResponse(result)

    @_guard("sessions.read", check)
    async def get_session(request: Request) -> Response:
        session_id = _path_id(request, "session_id")
        return JSONResponse(await records.get_session(store, session_id))

    @_guard("sessions.read", check)
    async def attendance(request: Request) -> Response:
        session_id = _path_id(request, "session_id")
        rows = await records.list_attendance(store, session_id)
        return JSONResponse({"session_id": session_id, "attendance": rows})

    @_guard("sessions.read", check)
    async def attendance_csv(request: Request) -> Response:
        session_id = _path_id(request, "session_id")
        zone = request.query_params.get("tz") or export.DEFAULT_TIMEZONE
        content = await records.attendance_csv(store, session_id, timezone=zone)
        name = f"attendance-{session_id}.csv"
        return Response(
            content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @_guard("sessions.read", check)
    async def chat(request: Request) -> Response:
        session_id = _path_id(request, "session_id")
        result = await records.list_chat(
            store,
            session_id,
            limit=_int_param(request, "limit", 200) or 0,
            offset=_int_param(request, "offset", 0) or 0,
        )
        return JSONResponse(result)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    routes: list[BaseRoute] = [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/tasks", create_task, methods=["POST"]),
        Route("/tasks", list_tasks, methods=["GET"]),
        Route("/tasks/export.csv", export_csv, methods=["GET"]),
        Route("/tasks/export.xlsx", export_xlsx, methods=["GET"]),
        Route("/tasks/{task_id:int}", get_task, methods=["GET"]),
        Route("/tasks/{task_id:int}/status", change_status, methods=["POST"]),
        Route("/tasks/{task_id:int}/reminders", add_reminder, methods=["POST"]),
        Route("/sessions", list_sessions, methods=["GET"]),
        Route("/sessions/{session_id:int}", get_session, methods=["GET"]),
        Route(
            "/sessions/{session_id:int}/attendance.csv",
            attendance_csv,
            methods=["GET"],
        ),
        Route("/sessions/{session_id:int}/attendance", attendance, methods=["GET"]),
        Route("/sessions/{session_id:int}/chat", chat, methods=["GET"]),
    ]

    async def unmatched(request: Request) -> Response:
        # Reply to unknown paths and methods in JSON like every other error.
        scope = dict(request.scope)
        scope["path"] = "/" + request.path_params["path"]
        for route in routes:
            match, _ = route.matches(scope)
            if match is Match.PARTIAL:
                return error_response(
                    405,
                    "method-not-allowed",
                    f"{request.method} is not allowed on {request.url.path}; "
                    "see /api/openapi.json for the methods of each path",
                )
        return error_response(
            404,
            "not-found",
            f"no API path {request.url.path}; see /api/openapi.json",
        )

    everything = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes.append(Route("/{path:path}", unmatched, methods=everything))
    return routes


# OpenAPI 3.1 description of the routes above, served at /api/openapi.json.


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Invalid input; `message` names the field and the fix.",
        403: "`authorize` rejected the call, or the step is for the assigner.",
        404: "No task or session with this id.",
        409: "Conflict with the current state (see `error`).",
        503: "Database unavailable; nothing was stored. Retry later.",
    }
    return {str(status): _json(_ref("Error"), text[status]) for status in statuses}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


_TIME = {"type": "string", "format": "date-time"}
_OPTIONAL_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATUS = {"type": "string", "enum": [status.value for status in TaskStatus]}

_PERIOD = [
    _query(
        "from",
        "Start (inclusive): a date in `tz` (2025-11-01) or a time with UTC offset.",
        {"type": "string"},
    ),
    _query(
        "to",
        "End: a date in `tz`, included whole (2025-11-30), "
        "or a time with UTC offset (excluded).",
        {"type": "string"},
    ),
    _query(
        "month",
        "A whole month in `tz`, e.g. 2025-11; instead of from/to.",
        {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    ),
    _query(
        "tz",
        "IANA time zone for dates and report times (default Asia/Shanghai).",
        {"type": "string", "default": "Asia/Shanghai"},
    ),
]
_PAGING = [
    _query(
        "limit",
        "Page size, 1 to 500.",
        {"type": "integer", "default": 50, "minimum": 1, "maximum": 500},
    ),
    _query("offset", "Rows to skip.", {"type": "integer", "default": 0, "minimum": 0}),
]
_TASK_FILTERS = [
    _query("unit", "Assignee unit id, e.g. puer.simao.", {"type": "string"}),
    _query(
        "subunits",
        "With `unit`, include its sub-units (puer matches puer.simao).",
        {"type": "boolean"},
    ),
    _query("status", "One status or a comma-separated list.", {"type": "string"}),
    _query("room", "Assigner's room id.", {"type": "string"}),
    _query("session", "Session id the task was created in.", {"type": "integer"}),
    _query(
        "overdue",
        "true: open tasks past their deadline; false: all others.",
        {"type": "boolean"},
    ),
]

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {
                "type": "string",
                "description": "Stable code: invalid, forbidden, unauthorized, "
                "not-found, method-not-allowed, conflict, invalid-transition, "
                "idempotency-conflict, database-unavailable, internal.",
            },
            "message": {
                "type": "string",
                "description": "For people; names the field and the fix.",
            },
        },
    },
    "TaskCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "assigner", "assigner_room", "assignee_unit", "deadline"],
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string", "maxLength": 4000},
            "assigner": {
                "type": "string",
                "maxLength": 64,
                "description": "Person who assigns.",
            },
            "assigner_room": {
                "type": "string",
                "maxLength": 64,
                "description": "Room id the assigner works from.",
            },
            "assignee_unit": {
                "type": "string",
                "maxLength": 128,
                "description": "Unit id in the org tree, e.g. puer.simao.",
            },
            "deadline": {
                **_TIME,
                "description": "ISO 8601 with UTC offset, in the future.",
            },
            "priority": {
                "type": "string",
                "enum": ["low", "normal", "high", "urgent"],
                "default": "normal",
            },
            "camera_id": {"type": ["string", "null"], "maxLength": 128},
            "snapshot_path": {"type": ["string", "null"], "maxLength": 500},
            "session_id": {"type": ["integer", "null"]},
        },
    },
    "TaskEvent": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {
                "type": "string",
                "enum": ["created", "status", "reminder", "overdue"],
            },
            "by": {"type": "string"},
            "at": _TIME,
            "from": {"type": ["string", "null"]},
            "to": {"type": ["string", "null"]},
            "note": {"type": "string"},
        },
    },
    "Task": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "assigner": {"type": "string"},
            "assigner_room": {"type": "string"},
            "assignee_unit": {"type": "string"},
            "deadline": _TIME,
            "priority": {"type": "string"},
            "status": _STATUS,
            "camera_id": {"type": ["string", "null"]},
            "snapshot_path": {"type": ["string", "null"]},
            "session_id": {"type": ["integer", "null"]},
            "created_at": _TIME,
            "updated_at": _TIME,
            "overdue": {
                "type": "boolean",
                "description": "Open and past its deadline now.",
            },
            "overdue_warned_at": _OPTIONAL_TIME,
            "events": {
                "type": "array",
                "items": _ref("TaskEvent"),
                "description": "Oldest first; absent in lists.",
            },
        },
    },
    "TaskList": {
        "type": "object",
        "properties": {
            "tasks": {"type": "array", "items": _ref("Task")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "StatusChange": {
        "type": "object",
        "additionalProperties": False,
        "required": ["status", "by"],
        "properties": {
            "status": _STATUS,
            "by": {"type": "string", "maxLength": 64},
            "room": {
                "type": "string",
                "description": "Room the person acts from; "
                "the assigner's room may act for the assigner.",
            },
            "note": {
                "type": "string",
                "maxLength": 2000,
                "description": "Required when returning a done task to in_progress.",
            },
        },
    },
    "Reminder": {
        "type": "object",
        "additionalProperties": False,
        "required": ["by", "note"],
        "properties": {
            "by": {"type": "string", "maxLength": 64},
            "note": {"type": "string", "maxLength": 2000},
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": ["joint", "mediation", "lecture"]},
            "room": {"type": "string"},
            "title": {"type": "string"},
            "host": {"type": "string"},
            "started_at": _TIME,
            "ended_at": _OPTIONAL_TIME,
            "participants": {
                "type": "integer",
                "description": "Distinct participants.",
            },
            "messages": {
                "type": "integer",
                "description": "Chat messages; single session only.",
            },
        },
    },
    "SessionList": {
        "type": "object",
        "properties": {
            "sessions": {"type": "array", "items": _ref("Session")},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    },
    "Attendance": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "participant_id": {"type": "string"},
            "display_name": {"type": "string"},
            "unit": {"type": "string"},
            "role": {"type": "string"},
            "joined_at": _TIME,
            "left_at": _OPTIONAL_TIME,
        },
    },
    "ChatMessage": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "sender": {"type": "string"},
            "sender_peer": {"type": ["string", "null"]},
            "text": {"type": "string"},
            "sent_at": _TIME,
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 description of the dispatch API."""
    csv_file = {
        "description": "CSV, UTF-8 with BOM, Chinese headers.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dispatch tasks and session records",
            "version": "1",
            "description": "Errors are JSON {error, message}. "
            "Times are ISO 8601 in UTC on output.",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            "/tasks": {
                "post": {
                    "summary": "Create a task",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "1-128 printable ASCII characters. "
                            "Repeating a create "
                            "with the same key and body returns the first task "
                            "(200); a different body gets 409.",
                            "schema": {"type": "string", "maxLength": 128},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("TaskCreate")}},
                    },
                    "responses": {
                        "201": _json(
                            _ref("Task"), "Created and committed; includes events."
                        ),
                        "200": _json(
                            _ref("Task"),
                            "Replay of an earlier create with the same key.",
                        ),
                        **_errors(400, 403, 409, 503),
                    },
                },
                "get": {
                    "summary": "List tasks, newest first",
                    "parameters": _TASK_FILTERS + _PERIOD + _PAGING,
                    "responses": {
                        "200": _json(_ref("TaskList"), "One page."),
                        **_errors(400, 403, 503),
                    },
                },
            },
            "/tasks/{task_id}": {
                "get": {
                    "summary": "Get a task with its events",
                    "parameters": [_path("task_id")],
                    "responses": {
                        "200": _json(_ref("Task"), "The task."),
                        **_errors(403, 404, 503),
                    },
                }
            },
            "/tasks/{task_id}/status": {
                "post": {
                    "summary": "Change a task's status",
                    "description": "assigned -> accepted -> in_progress -> "
                    "done -> verified; "
                    "the assigner may return done to in_progress (note "
                    "required) and cancel any task not yet verified.",
                    "parameters": [_path("task_id")],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _ref("StatusChange")}
                        },
                    },
                    "responses": {
                        "200": _json(_ref("Task"), "The task with events."),
                        **_errors(400, 403, 404, 409, 503),
                    },
                }
            },
            "/tasks/{task_id}/reminders": {
                "post": {
                    "summary": "Add a reminder (督办) to an open task",
                    "parameters": [_path("task_id")],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Reminder")}},
                    },
                    "responses": {
                        "201": _json(_ref("TaskEvent"), "The reminder event."),
                        **_errors(400, 403, 404, 409, 503),
                    },
                }
            },
            "/tasks/export.csv": {
                "get": {
                    "summary": "Task report as CSV",
                    "parameters": _TASK_FILTERS + _PERIOD,
                    "responses": {"200": csv_file, **_errors(400, 403, 503)},
                }
            },
            "/tasks/export.xlsx": {
                "get": {
                    "summary": "Monthly task report as an Excel workbook",
                    "description": "Sheets: 任务明细 (tasks), 单位汇总 (per unit), "
                    "报表信息 (period).",
                    "parameters": _TASK_FILTERS + _PERIOD,
                    "responses": {
                        "200": {
                            "description": "XLSX workbook.",
                            "content": {
                                xlsx: {"schema": {"type": "string", "format": "binary"}}
                            },
                        },
                        **_errors(400, 403, 503),
                    },
                }
            },
            "/sessions": {
                "get": {
                    "summary": "List sessions, newest first",
                    "parameters": [
                        _query("room", "Room id.", {"type": "string"}),
                        _query(
                            "kind", "joint, mediation or lecture.", {"type": "string"}
                        ),
                    ]
                    + _PERIOD
                    + _PAGING,
                    "responses": {
                        "200": _json(_ref("SessionList"), "One page."),
                        **_errors(400, 403, 503),
                    },
                }
            },
            "/sessions/{session_id}": {
                "get": {
                    "summary": "Get a session",
                    "parameters": [_path("session_id")],
                    "responses": {
                        "200": _json(_ref("Session"), "The session."),
                        **_errors(403, 404, 503),
                    },
                }
            },
            "/sessions/{session_id}/attendance": {
                "get": {
                    "summary": "Attendance of a session",
                    "parameters": [_path("session_id")],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "session_id": {"type": "integer"},
                                    "attendance": {
                                        "type": "array",
                                        "items": _ref("Attendance"),
                                    },
                                },
                            },
                            "Rows in joining order.",
                        ),
                        **_errors(403, 404, 503),
                    },
                }
            },
            "/sessions/{session_id}/attendance.csv": {
                "get": {
                    "summary": "Attendance of a session as CSV",
                    "parameters": [_path("session_id"), _PERIOD[3]],
                    "responses": {"200": csv_file, **_errors(400, 403, 404, 503)},
                }
            },
            "/sessions/{session_id}/chat": {
                "get": {
                    "summary": "Chat messages of a session, oldest first",
                    "parameters": [_path("session_id"), *_PAGING],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "messages": {
                                        "type": "array",
                                        "items": _ref("ChatMessage"),
                                    },
                                    "total": {"type": "integer"},
                                    "limit": {"type": "integer"},
                                    "offset": {"type": "integer"},
                                },
                            },
                            "One page.",
                        ),
                        **_errors(400, 403, 404, 503),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1 JSON."}},
                }
            },
        },
        "components": {"schemas": _SCHEMAS},
    }
