"""Connect the signaling layer to the records: a session record per room
while people are in it, attendance rows, chat, and live task pushes to rooms.

Records are written after the fact and never hold up signaling: a database
outage is logged with the room and peer ids, and the session goes on."""

from __future__ import annotations

import logging
from typing import Any

from dispatch import records
from dispatch.db import DispatchError, Store
from hub.org import Org
from hub.rooms import Participant, Room, RoomManager

logger = logging.getLogger(__name__)


class RecordsBridge:
    def __init__(self, store: Store, rooms: RoomManager, org: Org | None) -> None:
        self.store = store
        self.rooms = rooms
        self.org = org
        # session record id per room id, while the room is open
        self.sessions: dict[str, int] = {}

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
            self.sessions.pop(room.id, None)
            await records.close_session(self.store, session_id)
            logger.info("room=%s session record %d closed", room.id, session_id)
