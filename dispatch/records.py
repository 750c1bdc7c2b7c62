"""Session records: which conference ran in which room, who attended it and
the messages of its chat.

The signaling layer calls `open_session` when a conference starts,
`record_join` / `record_leave` as participants come and go, `add_chat` for
each chat message and `close_session` when the conference ends. On start-up
the hub calls `close_open_sessions` to end sessions a crash left open.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from dispatch.db import Conflict, InvalidInput, NotFound, Store
from dispatch.models import (
    Attendance,
    ChatMessage,
    SessionKind,
    SessionRecord,
    check_choice,
    check_id,
    check_text,
)
from dispatch.tasks import MAX_PAGE, utcnow

logger = logging.getLogger(__name__)

MAX_CHAT_TEXT = 4000


def session_to_dict(record: SessionRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "room": record.room,
        "title": record.title,
        "host": record.host,
        "started_at": record.started_at.isoformat(),
        "ended_at": record.ended_at.isoformat() if record.ended_at else None,
    }


def attendance_to_dict(row: Attendance) -> dict[str, Any]:
    return {
        "id": row.id,
        "participant_id": row.participant_id,
        "display_name": row.display_name,
        "unit": row.unit,
        "role": row.role,
        "joined_at": row.joined_at.isoformat(),
        "left_at": row.left_at.isoformat() if row.left_at else None,
    }


def chat_to_dict(message: ChatMessage) -> dict[str, Any]:
    return {
        "id": message.id,
        "sender": message.sender,
        "sender_peer": message.sender_peer,
        "text": message.text,
        "sent_at": message.sent_at.isoformat(),
    }


def _check_session_id(session_id: Any) -> int:
    if (
        isinstance(session_id, bool)
        or not isinstance(session_id, int)
        or not 0 < session_id < 2**63
    ):
        raise InvalidInput(
            f"session id must be an integer, got {session_id!r}", "session_id"
        )
    return session_id


def _load_session(db: Any, session_id: int) -> SessionRecord:
    record = db.get(SessionRecord, session_id)
    if record is None:
        raise NotFound(f"session {session_id} not found; check the id")
    return record


def _open_session(
    store: Store,
    room: str,
    kind: str,
    title: str,
    host: str,
    at: datetime,
    hub: str | None,
) -> int:
    with store.writing() as db:
        record = SessionRecord(
            kind=kind, room=room, title=title, host=host, started_at=at, hub=hub
        )
        db.add(record)
        db.flush()
        return record.id


def _close_session(store: Store, session_id: int, at: datetime) -> bool:
    with store.writing() as db:
        record = _load_session(db, session_id)
        if record.ended_at is not None:
            return False
        record.ended_at = at
        db.execute(
            update(Attendance)
            .where(Attendance.session_id == session_id, Attendance.left_at.is_(None))
            .values(left_at=at)
        )
        return True


def _close_open_sessions(store: Store, at: datetime, hub: str | None) -> list[int]:
    with store.writing() as db:
        query = select(SessionRecord.id).where(SessionRecord.ended_at.is_(None))
        if hub is not None:
            query = query.where(SessionRecord.hub == hub)
        ids = list(db.scalars(query))
        if ids:
            db.execute(
                update(SessionRecord)
                .where(SessionRecord.id.in_(ids))
                .values(ended_at=at)
            )
            db.execute(
                update(Attendance)
                .where(Attendance.session_id.in_(ids), Attendance.left_at.is_(None))
                .values(left_at=at)
            )
        return ids


def _record_join(
    store: Store,
    session_id: int,
    peer: str,
    name: str,
    unit: str,
    role: str,
    at: datetime,
) -> int:
    with store.writing() as db:
        record = _load_session(db, session_id)
        if record.ended_at is not None:
            raise Conflict(
                f"session {session_id} ended at {record.ended_at.isoformat()}; "
                "open a new session before recording joins"
            )
        row = Attendance(
            session_id=session_id,
            participant_id=peer,
            display_name=name,
            unit=unit,
            role=role,
            joined_at=at,
        )
        db.add(row)
        db.flush()
        return row.id


def _record_leave(store: Store, session_id: int, peer: str, at: datetime) -> int:
    with store.writing() as db:
        _load_session(db, session_id)
        result = db.execute(
            update(Attendance)
            .where(
                Attendance.session_id == session_id,
                Attendance.participant_id == peer,
                Attendance.left_at.is_(None),
            )
            .values(left_at=at)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _add_chat(
    store: Store,
    session_id: int,
    sender: str,
    text: str,
    sender_peer: str | None,
    at: datetime,
) -> int:
    with store.writing() as db:
        _load_session(db, session_id)
        message = ChatMessage(
            session_id=session_id,
            sender=sender,
            sender_peer=sender_peer,
            text=text,
            sent_at=at,
        )
        db.add(message)
        db.flush()
        return message.id


def _list_sessions(
    store: Store,
    room: str | None,
    kind: str | None,
    started_from: datetime | None,
    started_to: datetime | None,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    conditions: list[Any] = []
    if room is not None:
        conditions.append(SessionRecord.room == room)
    if kind is not None:
        conditions.append(SessionRecord.kind == kind)
    if started_from is not None:
        conditions.append(SessionRecord.started_at >= started_from)
    if started_to is not None:
        conditions.append(SessionRecord.started_at < started_to)
    participants = (
        select(func.count(func.distinct(Attendance.participant_id)))
        .where(Attendance.session_id == SessionRecord.id)
        .scalar_subquery()
    )
    with store.reading() as db:
        total = db.scalar(select(func.count(SessionRecord.id)).where(*conditions))
        statement = (
            select(SessionRecord, participants)
            .where(*conditions)
            .order_by(SessionRecord.id.desc())
            .limit(limit)
            .offset(offset)
        )
        sessions = []
        for record, count in db.execute(statement):
            data = session_to_dict(record)
            data["participants"] = count
            sessions.append(data)
    return {"sessions": sessions, "total": total, "limit": limit, "offset": offset}


def _get_session(store: Store, session_id: int) -> dict[str, Any]:
    with store.reading() as db:
        data = session_to_dict(_load_session(db, session_id))
        data["participants"] = db.scalar(
            select(func.count(func.distinct(Attendance.participant_id))).where(
                Attendance.session_id == session_id
            )
        )
        data["messages"] = db.scalar(
            select(func.count(ChatMessage.id)).where(
                ChatMessage.session_id == session_id
            )
        )
    return data


def _list_attendance(store: Store, session_id: int) -> list[dict[str, Any]]:
    with store.reading() as db:
        _load_session(db, session_id)
        rows = db.scalars(
            select(Attendance)
            .where(Attendance.session_id == session_id)
            .order_by(Attendance.joined_at, Attendance.id)
        )
        return [attendance_to_dict(row) for row in rows]


def _list_chat(
    store: Store, session_id: int, limit: int, offset: int
) -> dict[str, Any]:
    with store.reading() as db:
        _load_session(db, session_id)
        total = db.scalar(
            select(func.count(ChatMessage.id)).where(
                ChatMessage.session_id == session_id
            )
        )
        messages = db.scalars(
            select(ChatMessage)
            .where(ChatMessage.session_id == session_id)
            .order_by(ChatMessage.id)
            .limit(limit)
            .offset(offset)
        )
        return {
            "messages": [chat_to_dict(message) for message in messages],
            "total": total,
            "limit": limit,
            "offset": offset,
        }


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"limit is {limit}; use 1 to {MAX_PAGE} and page with offset", "limit"
        )
    if offset < 0:
        raise InvalidInput(f"offset is {offset}; use 0 or more", "offset")


# Async API.


async def open_session(
    store: Store,
    room: str,
    kind: str,
    title: str,
    host: str,
    *,
    started_at: datetime | None = None,
    hub: str | None = None,
) -> int:
    """Record the start of a conference in `room` and return its session id.
    `kind` is "joint", "mediation" or "lecture"; `host` names who runs it;
    `hub` names the hub process that holds it."""
    room = check_id(room, "room")
    kind = check_choice(kind, "kind", SessionKind)
    title = check_text(title, "title", max_length=200)
    host = check_text(host, "host", max_length=64)
    session_id = await store.run(
        _open_session, store, room, kind, title, host, started_at or utcnow(), hub
    )
    logger.info(
        "session opened: session=%s room=%s kind=%s host=%s",
        session_id,
        room,
        kind,
        host,
    )
    return session_id


async def close_session(
    store: Store, session_id: int, *, ended_at: datetime | None = None
) -> bool:
    """Record the end of a session; attendance rows still open are closed at
    the same time. Returns False if the session had already ended (nothing
    changes then)."""
    session_id = _check_session_id(session_id)
    closed = await store.run(_close_session, store, session_id, ended_at or utcnow())
    if closed:
        logger.info("session closed: session=%s", session_id)
    return closed


async def close_open_sessions(
    store: Store, *, ended_at: datetime | None = None, hub: str | None = None
) -> list[int]:
    """End every session that has no end time (only those of `hub`, if
    given), for use at start-up after a crash. Returns the ids closed."""
    ids = await store.run(_close_open_sessions, store, ended_at or utcnow(), hub)
    if ids:
        logger.warning(
            "sessions left open by an earlier run closed: session=%s",
            ",".join(map(str, ids)),
        )
    return ids


async def record_join(
    store: Store,
    session_id: int,
    peer: str,
    name: str,
    unit: str = "",
    role: str = "",
    *,
    joined_at: datetime | None = None,
) -> int:
    """Record that participant `peer` (shown as `name`, from unit `unit`,
    with role `role`) joined the session. Returns the attendance row id. A
    participant who rejoins gets a new row."""
    session_id = _check_session_id(session_id)
    peer = check_text(peer, "peer", max_length=64)
    name = check_text(name, "name", max_length=64)
    unit = check_text(unit, "unit", max_length=128, required=False)
    role = check_text(role, "role", max_length=32, required=False)
    row_id = await store.run(
        _record_join, store, session_id, peer, name, unit, role, joined_at or utcnow()
    )
    logger.debug("attendance join: session=%s peer=%s", session_id, peer)
    return row_id


async def record_leave(
    store: Store, session_id: int, peer: str, *, left_at: datetime | None = None
) -> int:
    """Record that `peer` left the session; returns how many open attendance
    rows were closed (0 if the peer had no open row)."""
    session_id = _check_session_id(session_id)
    peer = check_text(peer, "peer", max_length=64)
    closed = await store.run(
        _record_leave, store, session_id, peer, left_at or utcnow()
    )
    logger.debug(
        "attendance leave: session=%s peer=%s rows=%d", session_id, peer, closed
    )
    return closed


async def add_chat(
    store: Store,
    session_id: int,
    sender: str,
    text: str,
    *,
    sender_peer: str | None = None,
    sent_at: datetime | None = None,
) -> int:
    """Store a chat message of the session and return its id. `sender` is
    the display name; `sender_peer` the participant id when known."""
    session_id = _check_session_id(session_id)
    sender = check_text(sender, "sender", max_length=64)
    text = check_text(text, "text", max_length=MAX_CHAT_TEXT, multiline=True)
    if sender_peer is not None:
        sender_peer = check_text(sender_peer, "sender_peer", max_length=64)
    return await store.run(
        _add_chat, store, session_id, sender, text, sender_peer, sent_at or utcnow()
    )


async def list_sessions(
    store: Store,
    *,
    room: str | None = None,
    kind: str | None = None,
    started_from: datetime | None = None,
    started_to: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    """Return ``{"sessions": [...], "total", "limit", "offset"}``, newest
    first; each session carries its number of distinct participants."""
    if room is not None:
        check_id(room, "room")
    if kind is not None:
        check_choice(kind, "kind", SessionKind)
    _check_page(limit, offset)
    return await store.run(
        _list_sessions, store, room, kind, started_from, started_to, limit, offset
    )


async def get_session(store: Store, session_id: int) -> dict[str, Any]:
    """Return one session with its participant and chat message counts."""
    return await store.run(_get_session, store, _check_session_id(session_id))


async def list_attendance(store: Store, session_id: int) -> list[dict[str, Any]]:
    """Return the attendance rows of a session in joining order."""
    return await store.run(_list_attendance, store, _check_session_id(session_id))


async def list_chat(
    store: Store, session_id: int, *, limit: int = 200, offset: int = 0
) -> dict[str, Any]:
    """Return a page of the session's chat messages, oldest first."""
    _check_page(limit, offset)
    return await store.run(
        _list_chat, store, _check_session_id(session_id), limit, offset
    )


async def attendance_csv(
    store: Store, session_id: int, *, timezone: str = "Asia/Shanghai"
) -> bytes:
    """Return the attendance of a session as a CSV file (UTF-8 with BOM,
    Chinese headers, times in `timezone`)."""
    from dispatch.export import attendance_csv as render

    record = await get_session(store, session_id)
    rows = await list_attendance(store, session_id)
    return render(record, rows, timezone)
