"""The signaling service: what each client message does to rooms,
participants and their media. Transport-independent: the WebSocket endpoint
(signaling/websocket.py) feeds it checked messages and writes out what the
participants' outboxes hold."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hub.errors import HubError, NotFound, ProtocolError
from hub.rooms import Participant, Room, RoomManager
from media.peer import MediaSettings, PeerMedia
from media.uptrack import UpTrack
from signaling.messages import PROTOCOL_VERSION

logger = logging.getLogger(__name__)

Authenticate = Callable[[str | None, str], Any]
Hook = Callable[..., Awaitable[None]]


class SignalingService:
    def __init__(
        self,
        rooms: RoomManager,
        media_settings: MediaSettings,
        ice_servers: list,
        authenticate: Authenticate | None = None,
    ) -> None:
        self.rooms = rooms
        self.media_settings = media_settings
        self.ice_servers = ice_servers
        self.authenticate = authenticate
        # Called as hook(event, room=..., participant=...) for records.
        self.hooks: list[Hook] = []
        self._tasks: set[asyncio.Task] = set()

    # --- entry point --------------------------------------------------------

    async def handle(self, participant: Participant | None, message: dict) -> Any:
        """Carry out one checked message. Returns the new Participant after a
        join, a reply dict for a ping before join, otherwise None. Raises
        HubError for anything the client did wrong."""
        kind = message["type"]
        if kind == "ping":
            reply = {"type": "pong"}
            if participant is None:
                # Before join there is no outbox: the socket layer sends it.
                return {**reply, **({"id": message["id"]} if "id" in message else {})}
            self._reply(participant, reply, message)
            return None
        if kind == "join":
            if participant is not None:
                raise ProtocolError(
                    f"this socket already joined room {participant.room.id!r} as "
                    f"{participant.id!r}; open a new socket for another room",
                    code="already-joined",
                )
            return await self.join(message)
        if participant is None:
            raise ProtocolError(
                f"{kind!r} before 'join'; send 'join' first", code="not-joined"
            )
        handler = getattr(self, f"_on_{kind}")
        await handler(participant, message)
        return None

    def _reply(self, participant: Participant, reply: dict, request: dict) -> None:
        if "id" in request:
            reply["id"] = request["id"]
        participant.send(reply)

    # --- join and leave -----------------------------------------------------

    async def join(self, message: dict) -> Participant:
        identity = None
        if self.authenticate is not None:
            identity = self.authenticate(message.get("token"), message["room"])
        room = self.rooms.get_or_create(message["room"])
        participant = Participant(
            id=self.rooms.new_peer_id(),
            name=message["name"],
            room=room,
            subscribe_all=message["subscribe"] == "all",
            identity=identity,
        )
        participant.media = PeerMedia(
            participant.id,
            room.id,
            self.ice_servers,
            self.media_settings,
            self.rooms.new_track_id,
            on_failed=lambda pc, p=participant: self._spawn(self.leave(p, "timeout")),
        )
        participant.on_overflow = lambda p: self._spawn(self.leave(p, "disconnected"))
        room.participants[participant.id] = participant
        reply = {
            "type": "joined",
            "version": PROTOCOL_VERSION,
            "room": room.id,
            "peer": participant.id,
            "peers": [
                p.info() for p in room.participants.values() if p is not participant
            ],
            "tracks": room.track_list(),
            "iceServers": [
                {"urls": s.urls, "username": s.username, "credential": s.credential}
                for s in self.ice_servers
            ],
        }
        if "id" in message:
            reply["id"] = message["id"]
        participant.send(reply)
        room.broadcast(
            {"type": "peer-joined", "peer": participant.info()}, exclude=participant
        )
        logger.info(
            "room=%s peer=%s joined as %r (%d in room)",
            room.id,
            participant.id,
            participant.name,
            len(room.participants),
        )
        if participant.subscribe_all:
            changed = False
            for track in list(room.tracks.values()):
                if track.owner != participant.id:
                    changed |= participant.media.subscribe(track)
            if changed:
                self.schedule_negotiation(participant)
        await self._run_hooks("join", room=room, participant=participant)
        return participant

    async def leave(self, participant: Participant, reason: str) -> None:
        """Remove a participant: end its tracks for everyone, close its
        connections, tell the room. Safe to call more than once."""
        if participant.left:
            return
        participant.left = True
        room = participant.room
        room.participants.pop(participant.id, None)
        media = participant.media
        if media is not None:
            for up in media.end_up_tracks():
                self.end_track(room, up, broadcast=False)
        room.broadcast({"type": "peer-left", "peer": participant.id, "reason": reason})
        room.broadcast_tracks()
        logger.info(
            "room=%s peer=%s left (%s), %d remain",
            room.id,
            participant.id,
            reason,
            len(room.participants),
        )
        if participant.negotiation_task is not None:
            participant.negotiation_task.cancel()
        if media is not None:
            await media.close()
        self.rooms.discard_if_empty(room)
        await self._run_hooks(
            "leave", room=room, participant=participant, reason=reason
        )

    # --- tracks -------------------------------------------------------------

    def add_track(self, room: Room, up: UpTrack, exclude: str | None = None) -> None:
        """Make `up` part of `room` and send it to every subscribe-all
        participant (the publisher excluded)."""
        room.tracks[up.id] = up
        for other in list(room.participants.values()):
            if other.id == (exclude or up.owner) or not other.subscribe_all:
                continue
            if other.media is not None and other.media.subscribe(up):
                self.schedule_negotiation(other)

    def end_track(self, room: Room, up: UpTrack, broadcast: bool = True) -> None:
        room.tracks.pop(up.id, None)
        for other in list(room.participants.values()):
            if other.media is not None and other.media.unsubscribe(up.id):
                self.schedule_negotiation(other)
        up.end()
        if broadcast:
            room.broadcast_tracks()

    async def _on_publish(self, participant: Participant, message: dict) -> None:
        result = await participant.media.publish(message["sdp"], message["sources"])
        reply = {"type": "answer", "pc": "up", "sdp": result.answer}
        self._reply(participant, reply, message)
        room = participant.room
        for up in result.ended:
            self.end_track(room, up, broadcast=False)
        for _mid, up in result.added:
            up.muted = participant.muted.get(up.source, False)
            self.add_track(room, up)
        room.broadcast_tracks()

    # --- down negotiation ---------------------------------------------------

    def schedule_negotiation(self, participant: Participant) -> None:
        """Send the participant a new down offer soon. Changes made while an
        offer is outstanding are gathered into the next one."""
        media = participant.media
        if participant.left or media is None:
            return
        task = participant.negotiation_task
        if media.awaiting_answer or (task is not None and not task.done()):
            participant.renegotiate_again = True
            return
        participant.renegotiate_again = False
        participant.negotiation_task = asyncio.ensure_future(
            self._negotiate(participant)
        )

    async def _negotiate(self, participant: Participant) -> None:
        # Let the changes of the current message pile up into one offer.
        await asyncio.sleep(0)
        try:
            result = await participant.media.make_offer()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception(
                "room=%s peer=%s could not make a down offer",
                participant.room.id,
                participant.id,
            )
            return
        if result is None:
            return
        sdp, mapping = result
        participant.send({"type": "offer", "pc": "down", "sdp": sdp, "tracks": mapping})

    async def _on_answer(self, participant: Participant, message: dict) -> None:
        await participant.media.apply_answer(message["sdp"])
        if participant.renegotiate_again:
            self.schedule_negotiation(participant)

    async def _on_ice(self, participant: Participant, message: dict) -> None:
        await participant.media.add_candidate(message["pc"], message["candidate"])

    async def _on_subscribe(self, participant: Participant, message: dict) -> None:
        room = participant.room
        tracks = []
        for track_id in message["tracks"]:
            track = room.tracks.get(track_id)
            if track is None or track.ended:
                raise NotFound(
                    f"track {track_id!r} is not published in room {room.id!r}; "
                    "use an id from the latest 'tracks' message"
                )
            tracks.append(track)
        changed = False
        for track in tracks:
            if track.owner != participant.id:
                changed |= participant.media.subscribe(track)
        if changed:
            self.schedule_negotiation(participant)
        self._reply(participant, {"type": "ok"}, message)

    async def _on_unsubscribe(self, participant: Participant, message: dict) -> None:
        changed = False
        for track_id in message["tracks"]:
            changed |= participant.media.unsubscribe(track_id)
        if changed:
            self.schedule_negotiation(participant)
        self._reply(participant, {"type": "ok"}, message)

    async def _on_mute(self, participant: Participant, message: dict) -> None:
        source, muted = message["source"], message["muted"]
        participant.muted[source] = muted
        for up in participant.media.up_tracks.values():
            if up.source == source:
                up.muted = muted
        self._reply(participant, {"type": "ok"}, message)
        participant.room.broadcast_tracks()

    async def _on_leave(self, participant: Participant, message: dict) -> None:
        await self.leave(participant, "left")
        raise CloseRequest(1000, "left")

    # --- helpers ------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_hooks(self, event: str, **kwargs: Any) -> None:
        for hook in self.hooks:
            try:
                await hook(event, **kwargs)
            except HubError:
                raise
            except Exception:
                logger.exception("record hook failed for %s", event)


class CloseRequest(Exception):
    """Asks the socket layer to close with a code after flushing."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
