"""Rooms and participants: who is in which room, in which role, and which
tracks they publish. Media objects (up tracks, peer connections) hang off
these, but the bookkeeping here does no I/O of its own except sending messages
through each participant's outbox.

A room runs one kind of session (joint, mediation or lecture, see
hub/roles.py). Hearing parties of a mediation wait in `Room.waiting` until a
host admits them. Only admitted participants are in `Room.participants`, so
only they receive the room's messages and media."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.roles import Role, SessionKind
from media.peer import PeerMedia
from media.uptrack import UpTrack

logger = logging.getLogger(__name__)

# Messages waiting to be written to one participant's WebSocket. A client
# that does not read its socket is dropped rather than allowed to grow this.
OUTBOX_LIMIT = 1024
# Chat messages a room keeps to send to participants who join later.
CHAT_HISTORY = 100


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string, as sent on the wire."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RateLimit:
    """Token bucket: `burst` requests at once, refilled at `rate` per second."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float | None = None) -> bool:
        """Spend one token; return False when none is left."""
        now = time.monotonic() if now is None else now
        if self.tokens < 0:
            self.tokens = self.burst
        else:
            self.tokens = min(
                self.burst, self.tokens + (now - self.updated) * self.rate
            )
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class Participant:
    id: str
    name: str
    room: Room
    subscribe_all: bool = True
    # hub.auth.Identity of the verified token, or None for a join without one.
    identity: Any = None
    role: Role = Role.MEMBER
    # False while a hearing party waits to be let in.
    admitted: bool = True
    joined_at: str = field(default_factory=utc_now)
    waiting_since: str | None = None
    hand_raised: bool = False
    # Track ids requested with `subscribe`, used when subscribe_all is False.
    requested_tracks: set[str] = field(default_factory=set)
    # Close code the socket layer gets on this participant's next message
    # after a host removed it.
    close_code: int | None = None
    media: PeerMedia | None = None
    outbox: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(OUTBOX_LIMIT))
    muted: dict[str, bool] = field(default_factory=dict)
    left: bool = False
    negotiation_task: asyncio.Task | None = None
    renegotiate_again: bool = False
    on_overflow: Callable[[Participant], None] | None = None
    # Messages that change what others see (chat, hands, host controls).
    broadcast_limit: RateLimit = field(
        default_factory=lambda: RateLimit(rate=5.0, burst=20.0)
    )

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

    def end_outbox(self) -> None:
        """Tell the socket writer that nothing more will be queued, so it can
        close the socket (with `close_code`) once the queue is flushed."""
        try:
            self.outbox.put_nowait(None)
        except asyncio.QueueFull:
            # The writer is stuck on a client that does not read: the socket
            # layer's idle timeout or the TCP stack will end it.
            pass

    @property
    def unit(self) -> str | None:
        return getattr(self.identity, "unit", None)

    @property
    def user(self) -> str | None:
        return getattr(self.identity, "user", None)

    def info(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role.value}


@dataclass(frozen=True)
class SideRoom:
    """A host and one participant taken aside: they see and hear only each
    other, and the rest of the room sees and hears neither of them."""

    host: str
    peer: str

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in (self.host, self.peer)


@dataclass
class AttendanceEntry:
    """One person's presence in a room since it opened (签到)."""

    name: str
    role: str
    unit: str | None
    user: str | None
    first_joined: str
    last_left: str | None = None
    present: bool = True
    joins: int = 1

    def to_message(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "unit": self.unit,
            "user": self.user,
            "firstJoined": self.first_joined,
            "lastLeft": self.last_left,
            "present": self.present,
            "joins": self.joins,
        }


class Room:
    def __init__(
        self, room_id: str, kind: SessionKind = SessionKind.JOINT, title: str = ""
    ) -> None:
        self.id = room_id
        self.kind = kind
        self.title = title
        self.participants: dict[str, Participant] = {}
        self.waiting: dict[str, Participant] = {}
        self.tracks: dict[str, UpTrack] = {}
        self.locked = False
        self.recording = False
        self.spotlight: str | None = None
        self.floor: str | None = None
        self.side_room: SideRoom | None = None
        self.chat: deque[dict] = deque(maxlen=CHAT_HISTORY)
        # Attendance by user id (or by peer id for joins without a token).
        self.attendance: dict[str, AttendanceEntry] = {}
        # Users a host admitted once; they skip the waiting room on rejoin.
        self.admitted_users: set[str] = set()

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

    def session_state(self) -> dict:
        """Return the room's session controls as sent in `joined`."""
        side = self.side_room
        return {
            "kind": self.kind.value,
            "locked": self.locked,
            "recording": self.recording,
            "spotlight": self.spotlight,
            "floor": self.floor,
            "sideRoom": {"host": side.host, "peer": side.peer} if side else None,
            "hands": [p.id for p in self.participants.values() if p.hand_raised],
        }

    def broadcast(self, message: dict, exclude: Participant | None = None) -> None:
        """Send to every admitted participant; waiting parties get nothing."""
        for participant in list(self.participants.values()):
            if participant is not exclude:
                participant.send(message)

    def broadcast_tracks(self) -> None:
        self.broadcast({"type": "tracks", "tracks": self.track_list()})

    def find(self, peer_id: str) -> Participant | None:
        """Return the admitted or waiting participant with this id, if any."""
        return self.participants.get(peer_id) or self.waiting.get(peer_id)

    @property
    def empty(self) -> bool:
        return not self.participants and not self.waiting and not self.tracks


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

    def get(self, room_id: str) -> Room | None:
        return self.rooms.get(room_id)

    def get_or_create(
        self, room_id: str, kind: SessionKind = SessionKind.JOINT, title: str = ""
    ) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(room_id, kind, title)
            logger.info("room=%s opened kind=%s", room_id, kind.value)
        return room

    def discard_if_empty(self, room: Room) -> None:
        if room.empty and self.rooms.get(room.id) is room:
            del self.rooms[room.id]
            logger.info("room=%s closed (empty)", room.id)
