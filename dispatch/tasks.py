"""Dispatch tasks: idempotent creation, queries, status changes and reminders.

Status flow::

    assigned -> accepted -> in_progress -> done -> verified
                                   ^          |
                                   +----------+  returned by the assigner
    assigned, accepted, in_progress, done -> cancelled (by the assigner)

Every change is stored as a `TaskEvent` in the same transaction as the
change. The async functions here run their queries in the store's worker
threads and, when given a `notify` callable, push a ``task-event`` message
to the rooms concerned after the transaction has committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from dispatch.db import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Store,
)
from dispatch.models import (
    EventKind,
    Priority,
    SessionRecord,
    Task,
    TaskEvent,
    TaskStatus,
    check_choice,
    check_id,
    check_text,
    parse_datetime,
)

logger = logging.getLogger(__name__)

Notify = Callable[[dict[str, Any], list[str]], Awaitable[None]]
"""Pushes a live message to rooms; called as ``await notify(message,
rooms=[...])``. The signaling layer supplies the real one."""

UnitRooms = Callable[[str], list[str]]
"""Maps a unit id of the org tree to the room ids that should see pushes
about tasks assigned to that unit."""

ASSIGNER = "assigner"
ASSIGNEE = "assignee"

# For each status, the statuses it may change to and which side may do it.
TRANSITIONS: dict[str, dict[str, str]] = {
    TaskStatus.ASSIGNED: {
        TaskStatus.ACCEPTED: ASSIGNEE,
        TaskStatus.CANCELLED: ASSIGNER,
    },
    TaskStatus.ACCEPTED: {
        TaskStatus.IN_PROGRESS: ASSIGNEE,
        TaskStatus.CANCELLED: ASSIGNER,
    },
    TaskStatus.IN_PROGRESS: {
        TaskStatus.DONE: ASSIGNEE,
        TaskStatus.CANCELLED: ASSIGNER,
    },
    TaskStatus.DONE: {
        TaskStatus.VERIFIED: ASSIGNER,
        TaskStatus.IN_PROGRESS: ASSIGNER,
        TaskStatus.CANCELLED: ASSIGNER,
    },
    TaskStatus.VERIFIED: {},
    TaskStatus.CANCELLED: {},
}

# Statuses in which a task still waits for the assignee; only these can be
# reminded or become overdue.
OPEN_STATUSES = (TaskStatus.ASSIGNED, TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS)

CREATE_FIELDS = (
    "title",
    "description",
    "assigner",
    "assigner_room",
    "assignee_unit",
    "deadline",
    "priority",
    "camera_id",
    "snapshot_path",
    "session_id",
)

MAX_PAGE = 500
MAX_NOTE = 2000


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_unit_rooms(unit: str) -> list[str]:
    """Take a unit's room id to be its unit id."""
    return [unit]


@dataclass(frozen=True)
class TaskInput:
    """A validated create request."""

    title: str
    description: str
    assigner: str
    assigner_room: str
    assignee_unit: str
    deadline: datetime
    priority: str
    camera_id: str | None
    snapshot_path: str | None
    session_id: int | None

    @classmethod
    def parse(cls, body: Any) -> TaskInput:
        """Check a create request (a JSON object) field by field."""
        if not isinstance(body, Mapping):
            raise InvalidInput(
                f"the request body must be a JSON object, got {type(body).__name__}"
            )
        unknown = sorted(set(body) - set(CREATE_FIELDS))
        if unknown:
            raise InvalidInput(
                f"unknown field(s) {', '.join(map(repr, unknown))}; "
                f"expected only: {', '.join(CREATE_FIELDS)}",
                unknown[0],
            )
        for name in ("title", "assigner", "assigner_room", "assignee_unit", "deadline"):
            if body.get(name) is None:
                raise InvalidInput(f"field {name!r} is required", name)
        camera_id = body.get("camera_id")
        snapshot_path = body.get("snapshot_path")
        session_id = body.get("session_id")
        if session_id is not None and (
            isinstance(session_id, bool)
            or not isinstance(session_id, int)
            or not 0 < session_id < 2**63
        ):
            raise InvalidInput(
                f"field 'session_id' must be an integer session id, got {session_id!r}",
                "session_id",
            )
        return cls(
            title=check_text(body["title"], "title", max_length=200),
            description=check_text(
                body.get("description"),
                "description",
                max_length=4000,
                required=False,
                multiline=True,
            ),
            assigner=check_text(body["assigner"], "assigner", max_length=64),
            assigner_room=check_id(body["assigner_room"], "assigner_room"),
            assignee_unit=check_id(
                body["assignee_unit"], "assignee_unit", max_length=128
            ),
            deadline=parse_datetime(body["deadline"], "deadline").astimezone(UTC),
            priority=check_choice(
                body.get("priority", Priority.NORMAL.value), "priority", Priority
            ),
            camera_id=(
                None
                if camera_id is None
                else check_text(camera_id, "camera_id", max_length=128)
            ),
            snapshot_path=(
                None
                if snapshot_path is None
                else check_text(snapshot_path, "snapshot_path", max_length=500)
            ),
            session_id=session_id,
        )

    def fingerprint(self) -> str:
        """SHA-256 of the normalised request, to compare a replay with the
        request that first used an idempotency key."""
        values = asdict(self)
        values["deadline"] = self.deadline.isoformat()
        canonical = json.dumps(values, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class TaskQuery:
    """Filters and paging for `list_tasks`; every filter is optional."""

    unit: str | None = None
    # With `unit`, also match its sub-units ("puer" matches "puer.simao").
    subunits: bool = False
    statuses: Sequence[str] = ()
    assigner_room: str | None = None
    session_id: int | None = None
    overdue: bool | None = None
    # Creation time range: created_from <= created_at < created_to.
    created_from: datetime | None = None
    created_to: datetime | None = None
    limit: int = 50
    offset: int = 0

    def check(self) -> None:
        if self.unit is not None:
            check_id(self.unit, "unit", max_length=128)
        for status in self.statuses:
            check_choice(status, "status", TaskStatus)
        if self.assigner_room is not None:
            check_id(self.assigner_room, "room")
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidInput(
                f"limit is {self.limit}; use 1 to {MAX_PAGE} and page with offset",
                "limit",
            )
        if self.offset < 0:
            raise InvalidInput(f"offset is {self.offset}; use 0 or more", "offset")
        if (
            self.created_from is not None
            and self.created_to is not None
            and self.created_from >= self.created_to
        ):
            raise InvalidInput(
                f"from ({self.created_from.isoformat()}) is not before "
                f"to ({self.created_to.isoformat()}); swap or widen them",
                "from",
            )


# Serialisation


def task_to_dict(task: Task, now: datetime, events: bool = False) -> dict[str, Any]:
    """Return the JSON form of `task`; with `events`, its history too (the
    relationship must be loaded)."""
    data: dict[str, Any] = {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "assigner": task.assigner,
        "assigner_room": task.assigner_room,
        "assignee_unit": task.assignee_unit,
        "deadline": task.deadline.isoformat(),
        "priority": task.priority,
        "status": task.status,
        "camera_id": task.camera_id,
        "snapshot_path": task.snapshot_path,
        "session_id": task.session_id,
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
        "overdue": task.status in OPEN_STATUSES and task.deadline < now,
        "overdue_warned_at": (
            task.overdue_warned_at.isoformat() if task.overdue_warned_at else None
        ),
    }
    if events:
        data["events"] = [event_to_dict(event) for event in task.events]
    return data


def event_to_dict(event: TaskEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "by": event.actor,
        "at": event.at.isoformat(),
        "from": event.from_status,
        "to": event.to_status,
        "note": event.note,
    }


def task_rooms(
    task: Mapping[str, Any], unit_rooms: UnitRooms | None = None
) -> list[str]:
    """Return the rooms that see pushes about `task`: the assigner's room,
    then the assignee unit's rooms, without repeats."""
    mapper = unit_rooms or default_unit_rooms
    rooms = [task["assigner_room"], *mapper(task["assignee_unit"])]
    return list(dict.fromkeys(rooms))


async def push_event(
    notify: Notify | None,
    task: Mapping[str, Any],
    event: Mapping[str, Any],
    unit_rooms: UnitRooms | None = None,
) -> bool:
    """Send ``{"type": "task-event", "task": ..., "event": ...}`` to the
    task's rooms. Returns False (and logs) if `notify` raised, since the
    change it reports is already committed."""
    if notify is None:
        return True
    rooms = task_rooms(task, unit_rooms)
    message = {"type": "task-event", "task": dict(task), "event": dict(event)}
    try:
        await notify(message, rooms=rooms)  # type: ignore[call-arg]
    except Exception:
        logger.exception(
            "push failed: task=%s event=%s kind=%s rooms=%s",
            task["id"],
            event["id"],
            event["kind"],
            ",".join(rooms),
        )
        return False
    return True


# Blocking service code; each function runs in one of the store's threads.


def _load_task(session: Session, task_id: int, *, lock: bool = False) -> Task:
    statement = select(Task).where(Task.id == task_id)
    if lock:
        statement = statement.with_for_update()
    task = session.scalars(statement).one_or_none()
    if task is None:
        raise NotFound(f"task {task_id} not found; check the id")
    return task


def _find_by_key(session: Session, key: str) -> Task | None:
    statement = (
        select(Task)
        .where(Task.idempotency_key == key)
        .options(selectinload(Task.events))
    )
    return session.scalars(statement).one_or_none()


def _replay(task: Task, data: TaskInput, key: str, now: datetime) -> dict[str, Any]:
    if task.request_hash != data.fingerprint():
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was already used for task {task.id} with a "
            "different request; repeat that request unchanged, or send a new key "
            "to create another task"
        )
    logger.info("task create replayed: task=%s key=%s", task.id, key)
    return task_to_dict(task, now, events=True)


def _insert_task(
    store: Store, data: TaskInput, key: str | None, now: datetime
) -> dict[str, Any]:
    if data.deadline <= now:
        raise InvalidInput(
            f"field 'deadline' is {data.deadline.isoformat()}, which has already "
            "passed; set a time in the future",
            "deadline",
        )
    with store.writing() as session:
        if (
            data.session_id is not None
            and session.get(SessionRecord, data.session_id) is None
        ):
            raise InvalidInput(
                f"field 'session_id' is {data.session_id}, but no such session "
                "exists; omit it or use an id from GET /api/sessions",
                "session_id",
            )
        task = Task(
            title=data.title,
            description=data.description,
            assigner=data.assigner,
            assigner_room=data.assigner_room,
            assignee_unit=data.assignee_unit,
            deadline=data.deadline,
            priority=data.priority,
            status=TaskStatus.ASSIGNED.value,
            camera_id=data.camera_id,
            snapshot_path=data.snapshot_path,
            session_id=data.session_id,
            created_at=now,
            updated_at=now,
            idempotency_key=key,
            request_hash=data.fingerprint() if key else None,
        )
        event = TaskEvent(
            kind=EventKind.CREATED.value,
            actor=data.assigner,
            at=now,
            from_status=None,
            to_status=TaskStatus.ASSIGNED.value,
            note="",
        )
        task.events.append(event)
        session.add(task)
    # The with-block committed; only now is the task acknowledged.
    return task_to_dict(task, now, events=True)


def create_task_sync(
    store: Store, data: TaskInput, key: str | None, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Store a new task, or return the one created earlier with the same
    idempotency key. Returns (task with events, created)."""
    if key is not None:
        with store.reading() as session:
            existing = _find_by_key(session, key)
            if existing is not None:
                return _replay(existing, data, key, now), False
    try:
        return _insert_task(store, data, key, now), True
    except IntegrityError:
        if key is None:
            raise
        # Another request with the same key committed between the lookup
        # above and this insert; the unique constraint stopped the second row.
        with store.reading() as session:
            existing = _find_by_key(session, key)
            if existing is None:
                raise
            return _replay(existing, data, key, now), False


def get_task_sync(store: Store, task_id: int, now: datetime) -> dict[str, Any]:
    with store.reading() as session:
        statement = (
            select(Task).where(Task.id == task_id).options(selectinload(Task.events))
        )
        task = session.scalars(statement).one_or_none()
        if task is None:
            raise NotFound(f"task {task_id} not found; check the id")
        return task_to_dict(task, now, events=True)


def _conditions(query: TaskQuery, now: datetime) -> list[Any]:
    conditions: list[Any] = []
    if query.unit is not None:
        if query.subunits:
            conditions.append(
                (Task.assignee_unit == query.unit)
                | Task.assignee_unit.startswith(query.unit + ".", autoescape=True)
            )
        else:
            conditions.append(Task.assignee_unit == query.unit)
    if query.statuses:
        conditions.append(Task.status.in_(list(query.statuses)))
    if query.assigner_room is not None:
        conditions.append(Task.assigner_room == query.assigner_room)
    if query.session_id is not None:
        conditions.append(Task.session_id == query.session_id)
    if query.overdue is True:
        conditions.append(Task.status.in_(OPEN_STATUSES))
        conditions.append(Task.deadline < now)
    elif query.overdue is False:
        conditions.append(~(Task.status.in_(OPEN_STATUSES) & (Task.deadline < now)))
    if query.created_from is not None:
        conditions.append(Task.created_at >= query.created_from)
    if query.created_to is not None:
        conditions.append(Task.created_at < query.created_to)
    return conditions


def list_tasks_sync(store: Store, query: TaskQuery, now: datetime) -> dict[str, Any]:
    query.check()
    conditions = _conditions(query, now)
    with store.reading() as session:
        total = session.scalar(select(func.count(Task.id)).where(*conditions))
        statement = (
            select(Task)
            .where(*conditions)
            .order_by(Task.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        tasks = [task_to_dict(task, now) for task in session.scalars(statement)]
    return {
        "tasks": tasks,
        "total": total,
        "limit": query.limit,
        "offset": query.offset,
    }


def change_status_sync(
    store: Store,
    task_id: int,
    status: str,
    by: str,
    note: str,
    room: str | None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply one status transition; returns (task with events, event)."""
    with store.writing() as session:
        task = _load_task(session, task_id, lock=True)
        current = task.status
        allowed = TRANSITIONS[current]
        if status not in allowed:
            if not allowed:
                reason = f"'{current}' is a final status"
            elif status == current:
                reason = f"it is already '{current}'"
            else:
                reason = "allowed next: " + ", ".join(allowed)
            raise InvalidTransition(
                f"task {task_id} is '{current}' and cannot change to "
                f"'{status}'; {reason}",
                current=current,
                requested=status,
            )
        if (
            allowed[status] == ASSIGNER
            and by != task.assigner
            and (room is None or room != task.assigner_room)
        ):
            raise Forbidden(
                f"only the assigner {task.assigner!r} or a member of room "
                f"{task.assigner_room!r} may change task {task_id} from "
                f"'{current}' to '{status}'; got by={by!r}, room={room!r}"
            )
        if current == TaskStatus.DONE and status == TaskStatus.IN_PROGRESS and not note:
            raise InvalidInput(
                f"returning task {task_id} to 'in_progress' needs a 'note' saying "
                "what is still to be done",
                "note",
            )
        task.status = status
        task.updated_at = now
        event = TaskEvent(
            kind=EventKind.STATUS.value,
            actor=by,
            at=now,
            from_status=current,
            to_status=status,
            note=note,
        )
        task.events.append(event)
        session.flush()
        task_data = task_to_dict(task, now, events=True)
        event_data = event_to_dict(event)
    logger.info(
        "task status changed: task=%s from=%s to=%s by=%s", task_id, current, status, by
    )
    return task_data, event_data


def add_reminder_sync(
    store: Store, task_id: int, by: str, note: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Record a reminder (督办) on an open task; returns (task, event)."""
    with store.writing() as session:
        task = _load_task(session, task_id, lock=True)
        if task.status not in OPEN_STATUSES:
            raise Conflict(
                f"task {task_id} is '{task.status}'; reminders are only for "
                "tasks that are assigned, accepted or in_progress"
            )
        event = TaskEvent(
            kind=EventKind.REMINDER.value,
            actor=by,
            at=now,
            from_status=task.status,
            to_status=task.status,
            note=note,
        )
        task.events.append(event)
        task.updated_at = now
        session.flush()
        task_data = task_to_dict(task, now)
        event_data = event_to_dict(event)
    logger.info("task reminder added: task=%s by=%s", task_id, by)
    return task_data, event_data


# Async API for the HTTP layer and the signaling layer.


async def create_task(
    store: Store,
    body: Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    notify: Notify | None = None,
    unit_rooms: UnitRooms | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Validate and store a task from a JSON-shaped `body`; see
    `CREATE_FIELDS`. Returns (task with events, created): created is False
    when `idempotency_key` was used before with the same body, in which case
    the stored task is returned and nothing is pushed."""
    key = check_idempotency_key(idempotency_key)
    data = TaskInput.parse(body)
    task, created = await store.run(create_task_sync, store, data, key, now or utcnow())
    if created:
        logger.info(
            "task created: task=%s unit=%s room=%s key=%s",
            task["id"],
            task["assignee_unit"],
            task["assigner_room"],
            key,
        )
        summary = {name: value for name, value in task.items() if name != "events"}
        await push_event(notify, summary, task["events"][-1], unit_rooms)
    return task, created


async def get_task(
    store: Store, task_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """Return one task with its events, oldest first."""
    return await store.run(get_task_sync, store, task_id, now or utcnow())


async def list_tasks(
    store: Store, query: TaskQuery | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """Return ``{"tasks": [...], "total": n, "limit": .., "offset": ..}``,
    newest first, without events."""
    return await store.run(
        list_tasks_sync, store, query or TaskQuery(), now or utcnow()
    )


async def change_status(
    store: Store,
    task_id: int,
    status: Any,
    by: Any,
    note: Any = "",
    *,
    room: Any = None,
    notify: Notify | None = None,
    unit_rooms: UnitRooms | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move a task to `status` on behalf of `by` (a person; `room` is the
    room they act from). Assigner-side steps (verify, return, cancel) need
    `by` to be the assigner or `room` to be the assigner's room. Returns the
    task with its events."""
    status = check_choice(status, "status", TaskStatus)
    by = check_text(by, "by", max_length=64)
    note = check_text(note, "note", max_length=MAX_NOTE, required=False, multiline=True)
    room = None if room is None else check_id(room, "room")
    moment = now or utcnow()
    task, event = await store.run(
        change_status_sync, store, task_id, status, by, note, room, moment
    )
    summary = {name: value for name, value in task.items() if name != "events"}
    await push_event(notify, summary, event, unit_rooms)
    return task


async def add_reminder(
    store: Store,
    task_id: int,
    by: Any,
    note: Any,
    *,
    notify: Notify | None = None,
    unit_rooms: UnitRooms | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Add a reminder (督办) from `by` with a `note` to an open task and
    push it. Returns the new event."""
    by = check_text(by, "by", max_length=64)
    note = check_text(note, "note", max_length=MAX_NOTE, multiline=True)
    task, event = await store.run(
        add_reminder_sync, store, task_id, by, note, now or utcnow()
    )
    await push_event(notify, task, event, unit_rooms)
    return event


def check_idempotency_key(key: Any) -> str | None:
    if key is None:
        return None
    if (
        not isinstance(key, str)
        or not 1 <= len(key) <= 128
        or not key.isascii()
        or not key.isprintable()
    ):
        raise InvalidInput(
            f"Idempotency-Key {key!r} is invalid; use 1 to 128 printable ASCII "
            "characters, e.g. a UUID",
            "Idempotency-Key",
        )
    return key
