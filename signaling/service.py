"""The signaling service: what each client message does to rooms,
participants and their media. Transport-independent: the WebSocket endpoint
(signaling/websocket.py) feeds it checked messages and writes out what the
participants' outboxes hold.

Every message is checked against the participant's role in the room's kind
of session (hub/roles.py). This module does join, leave, publishing and which
down tracks each participant receives. The session controls (chat, floor,
waiting room, side room, lock and the others) are in signaling/moderation.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc.exceptions import InvalidStateError
from aiortc.sdp import SessionDescription

from hub.errors import Forbidden, HubError, NotFound, ProtocolError
from hub.roles import Action
from hub.rooms import AttendanceEntry, Participant, Room, RoomManager, utc_now
from media.peer import MediaSettings, PeerMedia
from media.uptrack import UpTrack
from signaling import moderation
from signaling.access import Access, Admission
from signaling.messages import PROTOCOL_VERSION, SOURCES_OF_KIND

logger = logging.getLogger(__name__)

Hook = Callable[..., Awaitable[None]]

CLOSE_TIMEOUT = 4408


def unsubscribe(media: PeerMedia, track_id: str) -> bool:
    """Stop sending track `track_id` on the participant's down connection.
    Returns False if it was not sent."""
    return media.unsubscribe(track_id)


class SignalingService:
    def __init__(
        self,
        rooms: RoomManager,
        media_settings: MediaSettings,
        ice_servers: list,
        access: Access | None = None,
    ) -> None:
        self.rooms = rooms
        self.media_settings = media_settings
        self.ice_servers = ice_servers
        self.access = access if access is not None else Access()
        # Called as `await hook(event, room=..., participant=..., **extra)` for
        # the records layer. Events: "join" (waiting=bool), "leave" (reason=),
        # "chat" (text=, at=), "admit" (by=), "side-room" (by=), "return"
        # (by=), "recording" (on=, by=). `by` is the host's Participant.
        self.hooks: list[Hook] = []
        self.controls = moderation.SessionControls(self)
        self._tasks: set[asyncio.Task] = set()

    # --- entry point --------------------------------------------------------

    async def handle(self, participant: Participant | None, message: dict) -> Any:
        """Carry out one checked message. Returns the new Participant after a
        join, a reply dict for a ping before join, otherwise None. Raises
        HubError for anything the client did wrong."""
        kind = message["type"]
        if participant is not None and participant.left:
            # Removed by a host, or dropped after its media failed: the socket
            # layer closes the socket with this code.
            if participant.close_code == moderation.CLOSE_REMOVED:
                raise CloseRequest(moderation.CLOSE_REMOVED, "removed")
            raise CloseRequest(CLOSE_TIMEOUT, "dropped")
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
        if self.controls.handles(kind):
            await self.controls.handle(participant, message)
            return None
        handler = getattr(self, f"_on_{kind}")
        await handler(participant, message)
        return None

    def _reply(self, participant: Participant, reply: dict, request: dict) -> None:
        if "id" in request:
            reply["id"] = request["id"]
        participant.send(reply)

    # --- join and leave -----------------------------------------------------

    async def join(self, message: dict) -> Participant:
        room_id = message["room"]
        open_room = self.rooms.get(room_id)
        kind, title = self.access.room_kind(room_id, message.get("kind"), open_room)
        token = message.get("token")
        admission = self.access.identify(token, room_id, kind)
        moderation.check_can_join(kind, admission.role, room_id)
        if open_room is not None:
            moderation.check_not_locked(open_room, admission.role)
        session_token = None
        if admission.is_invite:
            session_token = self.access.redeem(admission, token, room_id)

        room = self.rooms.get_or_create(room_id, kind, title)
        participant = self._new_participant(room, message, admission)
        user = participant.user
        waits = moderation.needs_admission(kind, admission.role) and not (
            user is not None and user in room.admitted_users
        )
        self._record_arrival(room, participant)
        if waits:
            self._join_waiting(room, participant, message, session_token)
        else:
            self._join_admitted(room, participant, message, session_token)
        await self.run_hooks("join", room=room, participant=participant, waiting=waits)
        return participant

    def _new_participant(
        self, room: Room, message: dict, admission: Admission
    ) -> Participant:
        identity = admission.identity
        participant = Participant(
            id=self.rooms.new_peer_id(),
            # A verified token's name is shown, so others can trust it.
            name=identity.name if identity is not None else message["name"],
            room=room,
            subscribe_all=message["subscribe"] == "all",
            identity=identity,
            role=admission.role,
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
        return participant

    def _joined_reply(
        self, room: Room, participant: Participant, message: dict, token: str | None
    ) -> dict:
        waiting = not participant.admitted
        reply = {
            "type": "joined",
            "version": PROTOCOL_VERSION,
            "room": room.id,
            "title": room.title,
            "peer": participant.id,
            "name": participant.name,
            "role": participant.role.value,
            "actions": moderation.actions_of(participant),
            "waiting": waiting,
            "peers": [] if waiting else self._peer_list(room, participant),
            "tracks": [] if waiting else room.track_list(),
            "chat": [] if waiting else list(room.chat),
            "session": room.session_state(),
            "iceServers": [
                {"urls": s.urls, "username": s.username, "credential": s.credential}
                for s in self.ice_servers
            ],
        }
        if token is not None:
            reply["token"] = token
        if "id" in message:
            reply["id"] = message["id"]
        return reply

    def _peer_list(self, room: Room, participant: Participant) -> list[dict]:
        return [p.info() for p in room.participants.values() if p is not participant]

    def _join_waiting(
        self, room: Room, participant: Participant, message: dict, token: str | None
    ) -> None:
        participant.admitted = False
        participant.waiting_since = utc_now()
        room.waiting[participant.id] = participant
        participant.send(self._joined_reply(room, participant, message, token))
        participant.send(
            {
                "type": "waiting",
                "room": room.id,
                "message": "请稍候，调解员准许后即可入场。"
                " Please wait until the mediator lets you in.",
            }
        )
        self.controls.send_waiting_list(room)
        logger.info(
            "room=%s peer=%s waiting as %r role=%s (%d waiting)",
            room.id,
            participant.id,
            participant.name,
            participant.role.value,
            len(room.waiting),
        )

    def _join_admitted(
        self, room: Room, participant: Participant, message: dict, token: str | None
    ) -> None:
        room.participants[participant.id] = participant
        participant.send(self._joined_reply(room, participant, message, token))
        room.broadcast(
            {"type": "peer-joined", "peer": participant.info()}, exclude=participant
        )
        if moderation.may(participant, Action.ADMIT_PARTY):
            participant.send(moderation.waiting_list_message(room))
        logger.info(
            "room=%s peer=%s joined as %r role=%s (%d in room)",
            room.id,
            participant.id,
            participant.name,
            participant.role.value,
            len(room.participants),
        )
        self.sync_subscriptions(participant)

    def admit(self, participant: Participant) -> None:
        """Move a waiting participant into the room and start its media."""
        room = participant.room
        room.waiting.pop(participant.id, None)
        participant.admitted = True
        participant.waiting_since = None
        room.participants[participant.id] = participant
        if participant.user is not None:
            room.admitted_users.add(participant.user)
        participant.send(
            {
                "type": "admitted",
                "room": room.id,
                "actions": moderation.actions_of(participant),
                "peers": self._peer_list(room, participant),
                "tracks": room.track_list(),
                "chat": list(room.chat),
                "session": room.session_state(),
            }
        )
        # Clients that learn about peers from `peer-joined` alone (the browser
        # client does) get one for every participant already in the room.
        for other in list(room.participants.values()):
            if other is not participant:
                participant.send({"type": "peer-joined", "peer": other.info()})
        participant.send({"type": "tracks", "tracks": room.track_list()})
        room.broadcast(
            {"type": "peer-joined", "peer": participant.info()}, exclude=participant
        )
        self.sync_subscriptions(participant)

    def _record_arrival(self, room: Room, participant: Participant) -> None:
        key = participant.user or participant.id
        entry = room.attendance.get(key)
        if entry is None:
            room.attendance[key] = AttendanceEntry(
                name=participant.name,
                role=participant.role.value,
                unit=participant.unit,
                user=participant.user,
                first_joined=participant.joined_at,
            )
        else:
            entry.joins += 1
            entry.present = True

    def _record_departure(self, room: Room, participant: Participant) -> None:
        entry = room.attendance.get(participant.user or participant.id)
        if entry is None:
            return
        entry.last_left = utc_now()
        others = [
            p
            for p in (*room.participants.values(), *room.waiting.values())
            if (p.user or p.id) == (participant.user or participant.id)
        ]
        entry.present = bool(others)

    async def leave(self, participant: Participant, reason: str) -> None:
        """Remove a participant: end its tracks for everyone, close its
        connections, tell the room. Safe to call more than once."""
        if participant.left:
            return
        participant.left = True
        room = participant.room
        was_waiting = room.waiting.pop(participant.id, None) is not None
        room.participants.pop(participant.id, None)
        self._record_departure(room, participant)
        media = participant.media
        if was_waiting:
            self.controls.send_waiting_list(room)
        else:
            if media is not None:
                for up in media.end_up_tracks():
                    self.end_track(room, up, broadcast=False)
            room.broadcast(
                {"type": "peer-left", "peer": participant.id, "reason": reason}
            )
            room.broadcast_tracks()
            await self.controls.forget(participant)
        logger.info(
            "room=%s peer=%s left (%s), %d remain, %d waiting",
            room.id,
            participant.id,
            reason,
            len(room.participants),
            len(room.waiting),
        )
        if participant.negotiation_task is not None:
            participant.negotiation_task.cancel()
        if media is not None:
            await media.close()
        participant.end_outbox()
        self.rooms.discard_if_empty(room)
        await self.run_hooks("leave", room=room, participant=participant, reason=reason)

    # --- tracks -------------------------------------------------------------

    def add_track(self, room: Room, up: UpTrack) -> None:
        """Make `up` part of `room` and send it to every participant who
        subscribes to it and may receive it now."""
        room.tracks[up.id] = up
        for other in list(room.participants.values()):
            if other.id == up.owner or other.media is None:
                continue
            if not (other.subscribe_all or up.id in other.requested_tracks):
                continue
            if not moderation.can_receive(room, other, up.owner):
                continue
            if other.media.subscribe(up):
                self.schedule_negotiation(other)

    def end_track(self, room: Room, up: UpTrack, broadcast: bool = True) -> None:
        room.tracks.pop(up.id, None)
        for other in list(room.participants.values()):
            other.requested_tracks.discard(up.id)
            if other.media is not None and unsubscribe(other.media, up.id):
                self.schedule_negotiation(other)
        up.end()
        if broadcast:
            room.broadcast_tracks()

    def sync_subscriptions(self, participant: Participant) -> None:
        """Subscribe the participant to exactly the room's tracks it asked for
        and may receive now (role, admission, side room), and renegotiate if
        that changed anything."""
        media = participant.media
        if media is None or participant.left:
            return
        room = participant.room
        desired: dict[str, UpTrack] = {}
        if participant.admitted and moderation.may(participant, Action.SUBSCRIBE):
            for up in room.tracks.values():
                if up.ended or up.owner == participant.id:
                    continue
                if not (
                    participant.subscribe_all or up.id in participant.requested_tracks
                ):
                    continue
                if moderation.can_receive(room, participant, up.owner):
                    desired[up.id] = up
        changed = False
        for track_id in [t for t in media.down if t not in desired]:
            changed |= unsubscribe(media, track_id)
        for up in desired.values():
            changed |= media.subscribe(up)
        if changed:
            self.schedule_negotiation(participant)

    def sync_room(self, room: Room) -> None:
        for participant in list(room.participants.values()):
            self.sync_subscriptions(participant)

    def enforce_publishing(self, participant: Participant) -> bool:
        """End the participant's up tracks that its role no longer allows it
        to publish (after it lost the floor). Returns whether any ended."""
        media = participant.media
        if media is None:
            return False
        ended = False
        for mid, up in list(media.up_tracks.items()):
            if not moderation.may_publish(participant, up.source):
                # Dropping the mid lets a later offer on the same media
                # section start a new track once the floor is given back.
                media.up_tracks.pop(mid, None)
                self.end_track(participant.room, up, broadcast=False)
                logger.info(
                    "room=%s peer=%s track=%s %s stopped: no longer allowed",
                    participant.room.id,
                    participant.id,
                    up.id,
                    up.source,
                )
                ended = True
        if ended:
            participant.room.broadcast_tracks()
        return ended

    async def _on_publish(self, participant: Participant, message: dict) -> None:
        refused = self._check_publish(participant, message)
        result = await participant.media.publish(message["sdp"], message["sources"])
        reply: dict = {"type": "answer", "pc": "up", "sdp": result.answer}
        room = participant.room
        for up in result.ended:
            self.end_track(room, up, broadcast=False)
        for mid, up in result.added:
            if mid in refused:
                participant.media.up_tracks.pop(mid, None)
                up.end()
                continue
            up.muted = participant.muted.get(up.source, False)
            self.add_track(room, up)
        # A later offer may relabel a section (camera to screen): check again.
        self.enforce_publishing(participant)
        if refused:
            reply["refused"] = [
                {"mid": mid, "code": "forbidden", "message": text}
                for mid, text in refused.items()
            ]
        self._reply(participant, reply, message)
        room.broadcast_tracks()

    def _check_publish(self, participant: Participant, message: dict) -> dict[str, str]:
        """Check what the offer would publish. Raises Forbidden when nothing
        in it is allowed; returns {mid: reason} for refused sections."""
        if not participant.admitted:
            moderation.require(participant, Action.PUBLISH_MICROPHONE)
        try:
            description = SessionDescription.parse(message["sdp"])
        except Exception as exc:
            raise ProtocolError(
                f"the publish offer is not a valid SDP: {exc}", code="bad-sdp"
            ) from None
        sources = message["sources"]
        refused: dict[str, str] = {}
        active = 0
        first_refusal: Forbidden | None = None
        for media in description.media:
            if media.direction not in ("sendonly", "sendrecv"):
                continue
            mid = media.rtp.muxId
            kind = media.kind
            if kind not in SOURCES_OF_KIND:
                continue
            active += 1
            source = sources.get(mid) or ("camera" if kind == "video" else "microphone")
            if source not in SOURCES_OF_KIND[kind]:
                raise ProtocolError(
                    f"media section {mid!r} is {kind} but sources[{mid!r}] is "
                    f"{source!r}; use one of {', '.join(SOURCES_OF_KIND[kind])}"
                )
            try:
                moderation.require_publish(participant, source)
            except Forbidden as exc:
                refused[mid] = exc.message
                first_refusal = first_refusal or exc
        if first_refusal is not None and len(refused) == active:
            raise first_refusal
        return refused

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
        media = participant.media
        if participant.left or media is None or media.closed:
            return
        try:
            result = await media.make_offer()
        except asyncio.CancelledError:
            raise
        except InvalidStateError:
            # The participant left while the offer was being made.
            logger.debug(
                "room=%s peer=%s down offer dropped: connection closed",
                participant.room.id,
                participant.id,
            )
            return
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
        moderation.require(participant, Action.SUBSCRIBE)
        room = participant.room
        for track_id in message["tracks"]:
            track = room.tracks.get(track_id)
            if track is None or track.ended:
                raise NotFound(
                    f"track {track_id!r} is not published in room {room.id!r}; "
                    "use an id from the latest 'tracks' message"
                )
        participant.requested_tracks.update(message["tracks"])
        self.sync_subscriptions(participant)
        self._reply(participant, {"type": "ok"}, message)

    async def _on_unsubscribe(self, participant: Participant, message: dict) -> None:
        participant.requested_tracks.difference_update(message["tracks"])
        changed = False
        for track_id in message["tracks"]:
            changed |= unsubscribe(participant.media, track_id)
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
        if participant.admitted:
            participant.room.broadcast_tracks()

    async def _on_leave(self, participant: Participant, message: dict) -> None:
        # The socket writer closes with this code once the outbox is flushed.
        participant.close_code = 1000
        await self.leave(participant, "left")
        raise CloseRequest(1000, "left")

    # --- helpers ------------------------------------------------------------

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_hooks(self, event: str, **kwargs: Any) -> None:
        for hook in self.hooks:
            try:
                await hook(event, **kwargs)
            except HubError:
                raise
            except Exception:
                logger.exception(
                    "room=%s record hook failed for %s", kwargs["room"].id, event
                )


class CloseRequest(Exception):
    """Asks the socket layer to close with a code after flushing."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
