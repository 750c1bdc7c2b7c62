"""Rooms and participants: who is in which room and which tracks they
publish. Media objects (up tracks, peer connections) hang off these, but the
bookkeeping here does no I/O of its own except sending messages through each
participant's outbox."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from media.peer import PeerMedia
from media.uptrack import UpTrack

logger = logging.getLogger(__name__)

# Messages waiting to be written to one participant's WebSocket. A client
# that does not read its socket is dropped rather than allowed to grow this.
OUTBOX_LIMIT = 1024


@dataclass
class Participant:
    id: str
    name: str
    room: Room
    subscribe_all: bool = True
    identity: Any = None
    media: PeerMedia | None = None
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    muted: dict[str, bool] = field(default_factory=dict)
    left: bool = False
    negotiation_task: asyncio.Task | None = None
    renegotiate_again: bool = False
    on_overflow: Callable[[Participant], None] | None = None

    def send(self, message: dict) -> None:
        """Queue a message for the participant's socket without waiting."""
        if self.left:
            return
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            logger.warning(
                "room=%s peer=%s outbox full (%d messages): dropping the peer",
                self.room.id,
                self.id,
                OUTBOX_LIMIT,
            )
            if self.on_overflow is not None:
                self.on_overflow(self)

    def info(self) -> dict:
        return {"id": self.id, "name": self.name}


class Room:
    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.participants: dict[str, Participant] = {}
        self.tracks: dict[str, UpTrack] = {}

    def track_info(self, track: UpTrack) -> dict:
        return {
            "id": track.id,
            "peer": track.owner,
            "kind": track.kind,
            "source": track.source,
            "label": track.label,
            "muted": track.muted,
        }

    def track_list(self) -> list[dict]:
        return [self.track_info(t) for t in self.tracks.values() if not t.ended]

    def broadcast(self, message: dict, exclude: Participant | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant is not exclude:
                participant.send(message)

    def broadcast_tracks(self) -> None:
        self.broadcast({"type": "tracks", "tracks": self.track_list()})


class RoomManager:
    """All rooms of this hub process. Rooms are made on first join and
    forgotten when the last participant leaves."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self._peer_ids = itertools.count(1)
        self._track_ids = itertools.count(1)

    def new_peer_id(self) -> str:
        return f"p{next(self._peer_ids)}"

    def new_track_id(self) -> str:
        return f"t{next(self._track_ids)}"

    def get_or_create(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(room_id)
            logger.info("room=%s opened", room_id)
        return room

    def discard_if_empty(self, room: Room) -> None:
        if (
            not room.participants
            and not room.tracks
            and self.rooms.get(room.id) is room
        ):
            del self.rooms[room.id]
            logger.info("room=%s closed (empty)", room.id)
