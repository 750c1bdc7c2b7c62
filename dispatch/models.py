"""ORM models: session records (attendance, chat) and dispatch tasks with events.

Every timestamp is stored in UTC. `UTCDateTime` rejects naive datetimes on
write and returns aware ones on read, so SQLite (which has no time zone type)
and PostgreSQL (`timestamptz`) behave the same.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dispatch.db import InvalidInput

# Constraint names are fixed so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} cannot be stored; "
                "attach a time zone first"
            )
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite compares the stored text, so every value must have the
            # same form: naive UTC.
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class SessionKind(enum.StrEnum):
    JOINT = "joint"
    MEDIATION = "mediation"
    LECTURE = "lecture"


class TaskStatus(enum.StrEnum):
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class EventKind(enum.StrEnum):
    CREATED = "created"
    STATUS = "status"
    REMINDER = "reminder"
    OVERDUE = "overdue"


# Statuses in which a task no longer waits for anyone.
CLOSED_STATUSES = frozenset(
    {TaskStatus.DONE, TaskStatus.VERIFIED, TaskStatus.CANCELLED}
)


def _in(values: type[enum.StrEnum]) -> str:
    return ", ".join(f"'{value.value}'" for value in values)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SessionRecord(Base):
    """One conference held in a room: a joint session, a mediation or a lecture."""

    __tablename__ = "session_records"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(SessionKind)})", name="kind"),
        Index("ix_session_records_room_started_at", "room", "started_at"),
        Index("ix_session_records_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    host: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The hub process that holds the session while it is open ("host:port" or
    # server.instance), so a restarting hub closes only its own sessions.
    hub: Mapped[str | None] = mapped_column(String(128), nullable=True)

    attendance: Mapped[list[Attendance]] = relationship(
        back_populates="session", order_by="Attendance.id"
    )


class Attendance(Base):
    """One stay of a participant in a session, from join to leave."""

    __tablename__ = "attendance"
    __table_args__ = (
        Index(
            "ix_attendance_session_id_participant_id", "session_id", "participant_id"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("session_records.id", ondelete="CASCADE")
    )
    participant_id: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    session: Mapped[SessionRecord] = relationship(back_populates="attendance")


class ChatMessage(Base):
    """A text message sent in a session's chat."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_id_id", "session_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("session_records.id", ondelete="CASCADE")
    )
    sender: Mapped[str] = mapped_column(String(64))
    sender_peer: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Task(Base):
    """A dispatch task sent from a command room to a unit of the org tree."""

    __tablename__ = "tasks"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(TaskStatus)})", name="status"),
        CheckConstraint(f"priority IN ({_in(Priority)})", name="priority"),
        Index("ix_tasks_assignee_unit_status", "assignee_unit", "status"),
        Index("ix_tasks_status_deadline", "status", "deadline"),
        Index("ix_tasks_created_at", "created_at"),
        Index("ix_tasks_session_id", "session_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    assigner: Mapped[str] = mapped_column(String(64))
    assigner_room: Mapped[str] = mapped_column(String(64))
    assignee_unit: Mapped[str] = mapped_column(String(128))
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NORMAL.value)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.ASSIGNED.value)
    camera_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    snapshot_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("session_records.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the overdue watcher warned about this task; set once, never cleared.
    overdue_warned_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True
    )
    # Client-chosen key that makes a repeated create return this task. The
    # unique constraint, not application code, stops two concurrent requests
    # with one key from both inserting.
    idempotency_key: Mapped[str | None] = mapped_column(
        String(128), nullable=True, unique=True
    )
    # SHA-256 of the normalised create request, to tell a replay from a
    # different request that reuses the key.
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    events: Mapped[list[TaskEvent]] = relationship(
        back_populates="task", order_by="TaskEvent.id"
    )


class TaskEvent(Base):
    """One step in a task's history: creation, a status change, a reminder
    (督办) or an overdue warning."""

    __tablename__ = "task_events"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(EventKind)})", name="kind"),
        Index("ix_task_events_task_id_id", "task_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")

    task: Mapped[Task] = relationship(back_populates="events")


# Field checks shared by the records and task services. Each raises
# InvalidInput naming the field, the value and the accepted form.

# Room, unit and participant ids: letters, digits, "-" and "_", in segments
# joined by single dots, e.g. "puer.simao" or "puer-joint".
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(
    value: Any,
    field: str,
    *,
    max_length: int,
    required: bool = True,
    multiline: bool = False,
) -> str:
    """Return `value` stripped of surrounding blanks, checking that it is a
    string of at most `max_length` characters without control characters."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(
            f"field {field!r} must be a string, got {_show(value)}", field
        )
    stripped = value.strip()
    if required and not stripped:
        raise InvalidInput(f"field {field!r} must not be empty", field)
    if len(stripped) > max_length:
        raise InvalidInput(
            f"field {field!r} is {len(stripped)} characters long; "
            f"shorten it to at most {max_length}",
            field,
        )
    if _CONTROL.search(stripped) or (not multiline and "\n" in stripped):
        raise InvalidInput(
            f"field {field!r} contains control characters"
            + ("" if multiline else " or line breaks")
            + "; remove them",
            field,
        )
    return stripped


def check_id(value: Any, field: str, *, max_length: int = 64) -> str:
    """Return `value` if it is a room, unit or participant id (see
    `ID_PATTERN`) of at most `max_length` characters."""
    if not isinstance(value, str):
        raise InvalidInput(
            f"field {field!r} must be a string id such as 'puer.simao', "
            f"got {_show(value)}",
            field,
        )
    if not value:
        raise InvalidInput(f"field {field!r} must not be empty", field)
    if len(value) > max_length or not ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"field {field!r} is {value!r}; expected at most {max_length} "
            "letters, digits, '-' or '_' in dot-separated parts, "
            "e.g. 'puer.simao'",
            field,
        )
    return value


def check_choice(value: Any, field: str, choices: type[enum.StrEnum]) -> str:
    allowed = [choice.value for choice in choices]
    if value not in allowed:
        raise InvalidInput(
            f"field {field!r} is {_show(value)}; expected one of: "
            + ", ".join(allowed),
            field,
        )
    return str(value)


def parse_datetime(value: Any, field: str) -> datetime:
    """Parse an ISO 8601 date and time that carries a UTC offset, e.g.
    "2025-12-05T18:00:00+08:00", into an aware datetime."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"field {field!r} is {value!r}, which is not an ISO 8601 time; "
                "send e.g. 2025-12-05T18:00:00+08:00",
                field,
            ) from None
    else:
        raise InvalidInput(
            f"field {field!r} must be an ISO 8601 time string, got {_show(value)}",
            field,
        )
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(
            f"field {field!r} is {value!s} without a UTC offset; add one, "
            "e.g. 2025-12-05T18:00:00+08:00",
            field,
        )
    try:
        # Times near the ends of the calendar cannot be moved to UTC.
        parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"field {field!r} is {value!s}, which is out of range; send a time "
            "between the years 1 and 9999 in UTC",
            field,
        ) from None
    return parsed


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
