"""Connect the signaling layer to the records: a session record per room
while people are in it, attendance rows, chat, and live task pushes to rooms.

Records are written after the fact and never hold up signaling: a database
outage is logged with the room and peer ids, and the session goes on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dispatch import records
from dispatch.db import DispatchError, Store
from hub.org import Org
from hub.rooms import Participant, Room, RoomManager

logger = logging.getLogger(__name__)

# Rooms whose ids start with this are private monitoring rooms of a wall
# screen, not sessions: nothing is recorded for them.
MONITORING_PREFIX = "wall-"


class RecordsBridge:
    def __init__(
        self, store: Store, rooms: RoomManager, org: Org | None, instance: str
    ) -> None:
        self.store = store
        self.rooms = rooms
        self.org = org
        # The name this hub process writes into the sessions it holds.
        self.instance = instance
        # session record id per room id, while the room is open
        self.sessions: dict[str, int] = {}
        # One lock per room keeps a room's record writes in event order: a
        # room that empties and fills again must not reuse the closing record.
        self._locks: dict[str, asyncio.Lock] = {}
        self._queued: dict[str, int] = {}

    async def start(self) -> None:
        """Close the session records this hub left open when it last stopped
        (a crash). Other hubs sharing the database keep theirs."""
        closed = await records.close_open_sessions(self.store, hub=self.instance)
        if closed:
            logger.info(
                "hub=%s closed %d session records left open by its last run",
                self.instance,
                len(closed),
            )

    def unit_rooms(self, unit_id: str) -> list[str]:
        """Rooms that see pushes about tasks owed by `unit_id`: its rooms in
        the org tree, or the unit id itself when it has none."""
        if self.org is not None:
            try:
                rooms = [room.id for room in self.org.rooms(unit_id)]
            except Exception:
                rooms = []
            if rooms:
                return rooms
        return [unit_id]

    async def notify(self, message: dict, rooms: list[str]) -> None:
        """Push a task event to every participant of the listed rooms."""
        for room_id in dict.fromkeys(rooms):
            room = self.rooms.rooms.get(room_id)
            if room is not None:
                room.broadcast(message)

    async def on_event(self, event: str, room: Room, **extra: Any) -> None:
        if room.id.startswith(MONITORING_PREFIX):
            return
        lock = self._locks.setdefault(room.id, asyncio.Lock())
        self._queued[room.id] = self._queued.get(room.id, 0) + 1
        try:
            async with lock:
                await self._record(event, room, extra)
        finally:
            self._queued[room.id] -= 1
            if not self._queued[room.id] and room.id not in self.sessions:
                del self._queued[room.id]
                self._locks.pop(room.id, None)

    async def _record(self, event: str, room: Room, extra: dict[str, Any]) -> None:
        participant: Participant | None = extra.get("participant")
        try:
            if event == "join" and participant is not None:
                # A party in the waiting room is not yet in the hearing: it is
                # recorded when the mediator admits it.
                if not extra.get("waiting"):
                    await self._join(room, participant)
            elif event == "admit" and participant is not None:
                await self._join(room, participant)
            elif event == "leave" and participant is not None:
                await self._leave(room, participant)
            elif event == "chat" and participant is not None:
                session_id = self.sessions.get(room.id)
                if session_id is not None:
                    await records.add_chat(
                        self.store,
                        session_id,
                        participant.name,
                        extra.get("text", ""),
                        sender_peer=participant.id,
                    )
        except DispatchError as exc:
            logger.warning(
                "room=%s peer=%s %s not recorded: %s",
                room.id,
                participant.id if participant else "-",
                event,
                exc,
            )

    async def _join(self, room: Room, participant: Participant) -> None:
        session_id = self.sessions.get(room.id)
        if session_id is None:
            kind = getattr(getattr(room, "kind", None), "value", "joint")
            session_id = await records.open_session(
                self.store,
                room.id,
                kind,
                getattr(room, "title", "") or room.id,
                participant.name,
                hub=self.instance,
            )
            self.sessions[room.id] = session_id
            logger.info("room=%s session record %d opened", room.id, session_id)
        identity = participant.identity
        unit = getattr(identity, "unit", None) or ""
        role = getattr(participant, "role", "")
        await records.record_join(
            self.store,
            session_id,
            participant.id,
            participant.name,
            unit,
            getattr(role, "value", str(role)),
        )

    async def _leave(self, room: Room, participant: Participant) -> None:
        session_id = self.sessions.get(room.id)
        if session_id is None:
            return
        await records.record_leave(self.store, session_id, participant.id)
        if not room.participants and not getattr(room, "waiting", None):
            # Forget the record before the write, so a join queued behind
            # this event opens a new one.
            self.sessions.pop(room.id, None)
            await records.close_session(self.store, session_id)
            logger.info("room=%s session record %d closed", room.id, session_id)
