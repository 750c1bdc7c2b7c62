"""Session controls: chat, hands, floor, roll call, host mutes, removal,
lock, waiting room, side room, recording notice and attendance.

Each control is checked against the permission table of hub/roles.py for
the room's session kind, with two runtime conditions: whether the participant
holds the floor (`Room.floor`) and whether it was admitted from the waiting
room (`Participant.admitted`). A refused control raises Forbidden, which the
client gets as an `error` with code "forbidden". docs/protocol.md lists the
messages.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hub import roles
from hub.errors import Conflict, Forbidden, NotFound, ProtocolError
from hub.roles import Action, Role, SessionKind
from hub.rooms import Participant, Room, SideRoom, utc_now

if TYPE_CHECKING:
    from signaling.service import SignalingService

logger = logging.getLogger(__name__)

SOURCE_ACTIONS = {
    "camera": Action.PUBLISH_CAMERA,
    "microphone": Action.PUBLISH_MICROPHONE,
    "screen": Action.SHARE_SCREEN,
    "screen-audio": Action.SHARE_SCREEN,
}

# Close code of a participant removed by a host (see signaling/websocket.py).
CLOSE_REMOVED = 4409


# --- permission checks ------------------------------------------------------


def _conditions(participant: Participant) -> dict[str, bool]:
    return {
        "has_floor": participant.room.floor == participant.id,
        "admitted": participant.admitted,
    }


def may(participant: Participant, action: Action) -> bool:
    """Return whether the participant may do `action` right now."""
    room = participant.room
    return roles.is_allowed(
        room.kind, participant.role, action, **_conditions(participant)
    )


def require(participant: Participant, action: Action) -> None:
    """Raise Forbidden unless the participant may do `action` right now."""
    room = participant.room
    roles.check(room.kind, participant.role, action, **_conditions(participant))


def may_publish(participant: Participant, source: str) -> bool:
    return may(participant, SOURCE_ACTIONS[source])


def require_publish(participant: Participant, source: str) -> None:
    require(participant, SOURCE_ACTIONS[source])


def actions_of(participant: Participant) -> list[str]:
    """Return the actions the participant may do now, for the client's controls."""
    room = participant.room
    allowed = roles.allowed_actions(
        room.kind, participant.role, **_conditions(participant)
    )
    return sorted(action.value for action in allowed)


def needs_admission(kind: SessionKind, role: Role) -> bool:
    """Return whether `role` waits in the waiting room of a `kind` session."""
    rules = roles.PERMISSIONS[kind][role]
    return any(rule.needs_admission for rule in rules.values())


def check_can_join(kind: SessionKind, role: Role, room_id: str) -> None:
    """Raise Forbidden if `role` could do nothing at all in a `kind` session."""
    if roles.rule_for(kind, role, Action.SUBSCRIBE) is None:
        raise Forbidden(
            f"role {role.value!r} may not join room {room_id!r}, which runs a "
            f"{kind.value} session; use the room you were invited to"
        )


def check_not_locked(room: Room, role: Role) -> None:
    """Raise Forbidden for a new join to a locked room, hosts excepted."""
    if room.locked and not roles.is_allowed(room.kind, role, Action.LOCK_ROOM):
        raise Forbidden(
            f"room {room.id!r} is locked: the host admits no one new; ask the "
            "host to unlock it, then join again"
        )


def can_receive(room: Room, viewer: Participant, owner: str) -> bool:
    """Return whether `viewer` may receive the media of participant `owner`.

    During a side room, its two members receive only each other, and the
    others receive neither of them.
    """
    if not viewer.admitted:
        return False
    side = room.side_room
    if side is None:
        return True
    if viewer.id in side:
        return owner in side
    return owner not in side


def waiting_list_message(room: Room) -> dict:
    return {
        "type": "waiting-list",
        "peers": [
            {**p.info(), "since": p.waiting_since} for p in room.waiting.values()
        ],
    }


# --- the controls -----------------------------------------------------------


class SessionControls:
    """Handlers of the session-control messages, bound to one service."""

    _HANDLERS = {
        "chat": "_chat",
        "raise-hand": "_raise_hand",
        "give-floor": "_give_floor",
        "take-floor": "_take_floor",
        "roll-call": "_roll_call",
        "mute-all": "_mute_all",
        "mute-peer": "_mute_peer",
        "remove": "_remove",
        "lock": "_lock",
        "unlock": "_lock",
        "admit": "_admit",
        "side-room": "_side_room",
        "return": "_return",
        "recording": "_recording",
        "attendance": "_attendance",
    }

    def __init__(self, service: SignalingService) -> None:
        self.service = service

    def handles(self, message_type: str) -> bool:
        return message_type in self._HANDLERS

    async def handle(self, participant: Participant, message: dict) -> None:
        """Carry out one control message; reply `ok` when it had an `id`."""
        if not participant.broadcast_limit.take():
            raise ProtocolError(
                f"too many session-control messages from peer {participant.id!r}; "
                "wait a second and send it again",
                code="rate-limited",
            )
        handler = getattr(self, self._HANDLERS[message["type"]])
        reply = await handler(participant, message)
        if reply is None and "id" in message:
            reply = {"type": "ok"}
        if reply is not None:
            if "id" in message:
                reply["id"] = message["id"]
            participant.send(reply)

    # --- helpers ----------------------------------------------------------

    def _target(self, participant: Participant, peer_id: str) -> Participant:
        """Return the admitted participant `peer_id` of the sender's room."""
        room = participant.room
        target = room.participants.get(peer_id)
        if target is not None:
            return target
        if peer_id in room.waiting:
            raise Conflict(
                f"peer {peer_id!r} is still in the waiting room; admit it first"
            )
        raise NotFound(
            f"peer {peer_id!r} is not in room {room.id!r}; use an id from "
            "'joined' or 'peer-joined'"
        )

    def _hosts(self, room: Room, action: Action) -> list[Participant]:
        return [p for p in room.participants.values() if may(p, action)]

    def send_waiting_list(self, room: Room) -> None:
        message = waiting_list_message(room)
        for host in self._hosts(room, Action.ADMIT_PARTY):
            host.send(message)

    def _send_permissions(self, participant: Participant) -> None:
        participant.send(
            {
                "type": "permissions",
                "role": participant.role.value,
                "actions": actions_of(participant),
            }
        )

    def _send_hand(self, participant: Participant) -> None:
        message = {
            "type": "hand",
            "peer": participant.id,
            "name": participant.name,
            "raised": participant.hand_raised,
        }
        hosts = self._hosts(participant.room, Action.GIVE_FLOOR)
        for host in hosts:
            host.send(message)
        if participant not in hosts:
            participant.send(message)

    def _who(self, participant: Participant) -> dict:
        return {"by": participant.id, "byName": participant.name}

    async def forget(self, participant: Participant) -> None:
        """Clear what an admitted participant who left held in its room."""
        room = participant.room
        if room.floor == participant.id:
            room.floor = None
            room.broadcast({"type": "floor", "peer": None, "name": None, "by": None})
        if room.spotlight == participant.id:
            room.spotlight = None
            room.broadcast({"type": "spotlight", "peer": None, "name": None})
        side = room.side_room
        if side is not None and participant.id in side:
            room.side_room = None
            room.broadcast({"type": "side-room", "peer": None, "host": None})
            self.service.sync_room(room)
            other = room.participants.get(
                side.peer if participant.id == side.host else side.host
            )
            if other is not None:
                await self.service.run_hooks(
                    "return", room=room, participant=other, by=None
                )

    # --- chat and hands ---------------------------------------------------

    async def _chat(self, participant: Participant, message: dict) -> None:
        require(participant, Action.CHAT)
        room = participant.room
        entry = {
            "type": "chat",
            "peer": participant.id,
            "name": participant.name,
            "text": message["text"],
            "at": utc_now(),
        }
        room.chat.append(entry)
        room.broadcast(entry)
        await self.service.run_hooks(
            "chat",
            room=room,
            participant=participant,
            text=entry["text"],
            at=entry["at"],
        )

    async def _raise_hand(self, participant: Participant, message: dict) -> None:
        if message["raised"]:
            require(participant, Action.RAISE_HAND)
        participant.hand_raised = message["raised"]
        self._send_hand(participant)

    # --- floor and roll call ----------------------------------------------

    async def _give_floor(self, participant: Participant, message: dict) -> None:
        require(participant, Action.GIVE_FLOOR)
        target = self._target(participant, message["peer"])
        room = participant.room
        previous = room.participants.get(room.floor) if room.floor else None
        room.floor = target.id
        room.broadcast(
            {
                "type": "floor",
                "peer": target.id,
                "name": target.name,
                **self._who(participant),
            }
        )
        logger.info(
            "room=%s peer=%s gave the floor to peer=%s",
            room.id,
            participant.id,
            target.id,
        )
        if target.hand_raised:
            target.hand_raised = False
            self._send_hand(target)
        if previous is not None and previous is not target:
            self.service.enforce_publishing(previous)
            self._send_permissions(previous)
        self._send_permissions(target)

    async def _take_floor(self, participant: Participant, message: dict) -> None:
        room = participant.room
        peer_id = message.get("peer")
        giving_back = room.floor == participant.id and peer_id in (None, participant.id)
        if not giving_back:
            require(participant, Action.GIVE_FLOOR)
        if peer_id is not None and room.floor != peer_id:
            self._target(participant, peer_id)
            raise Conflict(
                f"peer {peer_id!r} does not hold the floor"
                + (f"; peer {room.floor!r} does" if room.floor else "; no one does")
            )
        holder = room.participants.get(room.floor) if room.floor else None
        room.floor = None
        if holder is None:
            return
        room.broadcast(
            {"type": "floor", "peer": None, "name": None, **self._who(participant)}
        )
        logger.info(
            "room=%s peer=%s took the floor from peer=%s",
            room.id,
            participant.id,
            holder.id,
        )
        self.service.enforce_publishing(holder)
        self._send_permissions(holder)

    async def _roll_call(self, participant: Participant, message: dict) -> None:
        require(participant, Action.ROLL_CALL)
        room = participant.room
        peer_id = message["peer"]
        target = None if peer_id is None else self._target(participant, peer_id)
        room.spotlight = None if target is None else target.id
        room.broadcast(
            {
                "type": "spotlight",
                "peer": room.spotlight,
                "name": None if target is None else target.name,
                **self._who(participant),
            }
        )

    # --- host mutes and removal -------------------------------------------

    def _mute(self, host: Participant, target: Participant, source: str) -> None:
        target.muted[source] = True
        if target.media is not None:
            for up in target.media.up_tracks.values():
                if up.source == source:
                    up.muted = True
        target.send({"type": "muted-by-chair", "source": source, **self._who(host)})

    async def _mute_all(self, participant: Participant, message: dict) -> None:
        require(participant, Action.MUTE_OTHERS)
        room = participant.room
        for other in list(room.participants.values()):
            if other is not participant:
                self._mute(participant, other, message["source"])
        room.broadcast_tracks()
        logger.info(
            "room=%s peer=%s muted every %s", room.id, participant.id, message["source"]
        )

    async def _mute_peer(self, participant: Participant, message: dict) -> None:
        require(participant, Action.MUTE_OTHERS)
        target = self._target(participant, message["peer"])
        self._mute(participant, target, message["source"])
        participant.room.broadcast_tracks()

    async def _remove(self, participant: Participant, message: dict) -> None:
        require(participant, Action.REMOVE_PEER)
        room = participant.room
        target = room.find(message["peer"])
        if target is None:
            raise NotFound(
                f"peer {message['peer']!r} is not in room {room.id!r}; use an id "
                "from 'joined', 'peer-joined' or 'waiting-list'"
            )
        if target is participant:
            raise ProtocolError("a host cannot remove itself; send 'leave' instead")
        target.send(
            {
                "type": "removed",
                "room": room.id,
                "message": "您已被主持人移出会场。 The host removed you from the room.",
                **self._who(participant),
            }
        )
        target.close_code = CLOSE_REMOVED
        if target.user is not None:
            room.admitted_users.discard(target.user)
        logger.info(
            "room=%s peer=%s removed peer=%s", room.id, participant.id, target.id
        )
        await self.service.leave(target, "removed")

    # --- lock, waiting room, side room ------------------------------------

    async def _lock(self, participant: Participant, message: dict) -> None:
        require(participant, Action.LOCK_ROOM)
        room = participant.room
        room.locked = message["type"] == "lock"
        room.broadcast(
            {"type": "locked", "locked": room.locked, **self._who(participant)}
        )
        logger.info(
            "room=%s peer=%s %s the room",
            room.id,
            participant.id,
            "locked" if room.locked else "unlocked",
        )

    async def _admit(self, participant: Participant, message: dict) -> None:
        require(participant, Action.ADMIT_PARTY)
        room = participant.room
        target = room.waiting.get(message["peer"])
        if target is None:
            if message["peer"] in room.participants:
                raise Conflict(f"peer {message['peer']!r} is already admitted")
            raise NotFound(
                f"peer {message['peer']!r} is not waiting in room {room.id!r}; use "
                "an id from the latest 'waiting-list'"
            )
        self.service.admit(target)
        self.send_waiting_list(room)
        logger.info(
            "room=%s peer=%s admitted peer=%s", room.id, participant.id, target.id
        )
        await self.service.run_hooks(
            "admit", room=room, participant=target, by=participant
        )

    async def _side_room(self, participant: Participant, message: dict) -> None:
        require(participant, Action.SIDE_ROOM)
        room = participant.room
        target = self._target(participant, message["peer"])
        if target is participant:
            raise ProtocolError(
                "a host cannot take itself aside; name the participant to talk to"
            )
        side = room.side_room
        if side is not None:
            raise Conflict(
                f"peer {side.peer!r} is already in a side room with peer "
                f"{side.host!r}; send 'return' for it first"
            )
        room.side_room = SideRoom(host=participant.id, peer=target.id)
        room.broadcast({"type": "side-room", "peer": target.id, "host": participant.id})
        self.service.sync_room(room)
        logger.info(
            "room=%s peer=%s took peer=%s aside", room.id, participant.id, target.id
        )
        await self.service.run_hooks(
            "side-room", room=room, participant=target, by=participant
        )

    async def _return(self, participant: Participant, message: dict) -> None:
        require(participant, Action.SIDE_ROOM)
        room = participant.room
        target = self._target(participant, message["peer"])
        side = room.side_room
        if side is None or side.peer != target.id:
            raise Conflict(
                f"peer {target.id!r} is not in a side room"
                + (f"; peer {side.peer!r} is" if side is not None else "")
            )
        room.side_room = None
        room.broadcast({"type": "side-room", "peer": None, "host": None})
        self.service.sync_room(room)
        logger.info(
            "room=%s peer=%s brought peer=%s back", room.id, participant.id, target.id
        )
        await self.service.run_hooks(
            "return", room=room, participant=target, by=participant
        )

    # --- recording notice and attendance ----------------------------------

    async def _recording(self, participant: Participant, message: dict) -> None:
        require(participant, Action.START_RECORDING)
        room = participant.room
        room.recording = message["on"]
        notice = {"type": "recording", "on": room.recording, **self._who(participant)}
        room.broadcast(notice)
        # Parties in the waiting room get the notice too, because they will
        # be recorded once admitted.
        for waiting in list(room.waiting.values()):
            waiting.send(notice)
        logger.info(
            "room=%s peer=%s turned recording %s",
            room.id,
            participant.id,
            "on" if room.recording else "off",
        )
        await self.service.run_hooks(
            "recording",
            room=room,
            participant=participant,
            on=room.recording,
            by=participant,
        )

    async def _attendance(self, participant: Participant, message: dict) -> dict:
        require(participant, Action.ROLL_CALL)
        room = participant.room
        return {
            "type": "attendance",
            "room": room.id,
            "entries": [entry.to_message() for entry in room.attendance.values()],
        }
