"""The record hooks of SignalingService, in process: which events the
records layer gets for a hearing, with which participant and extras."""

from __future__ import annotations

import json

from hub.rooms import RoomManager
from media.peer import MediaSettings
from signaling import messages
from signaling.access import Access
from signaling.service import SignalingService
from tests.sessionclient import SECRET, token_for

ROOM = "hooks-hearing"


def _parse(message: dict) -> dict:
    return messages.parse(json.dumps(message), 65536)


def _outbox(participant) -> list[dict]:
    drained = []
    while not participant.outbox.empty():
        drained.append(participant.outbox.get_nowait())
    return drained


async def test_hearing_events_reach_hooks():
    service = SignalingService(
        RoomManager(), MediaSettings(), [], access=Access(secret=SECRET)
    )
    events: list[tuple[str, str, dict]] = []

    async def record(event, room, participant, **extra):
        events.append((event, participant.id, extra))
        assert room.id == ROOM

    service.hooks.append(record)

    async def join(role: str, name: str, **fields):
        message = {
            "type": "join",
            "room": ROOM,
            "name": name,
            "token": token_for(role, ROOM, name=name),
            **fields,
        }
        return await service.handle(None, _parse(message))

    mediator = await join("mediator", "调解员", kind="mediation")
    party = await join("party", "当事人甲")
    other = await join("party", "当事人乙")
    assert [e[0] for e in events] == ["join", "join", "join"]
    assert events[0][2] == {"waiting": False}
    assert events[1][2] == {"waiting": True}

    await service.handle(mediator, _parse({"type": "admit", "peer": party.id}))
    await service.handle(mediator, _parse({"type": "admit", "peer": other.id}))
    await service.handle(party, _parse({"type": "chat", "text": "我同意调解"}))
    await service.handle(mediator, _parse({"type": "side-room", "peer": party.id}))
    await service.handle(mediator, _parse({"type": "return", "peer": party.id}))
    await service.handle(mediator, _parse({"type": "recording", "on": True}))
    await service.leave(other, "left")

    names = [(event, peer) for event, peer, _extra in events[3:]]
    assert names == [
        ("admit", party.id),
        ("admit", other.id),
        ("chat", party.id),
        ("side-room", party.id),
        ("return", party.id),
        ("recording", mediator.id),
        ("leave", other.id),
    ]
    extras = [extra for _event, _peer, extra in events[3:]]
    assert extras[0]["by"] is mediator
    assert extras[2]["text"] == "我同意调解"
    assert extras[2]["at"].endswith("Z")
    assert extras[3]["by"] is mediator
    assert extras[5]["on"] is True
    assert extras[6] == {"reason": "left"}

    # What the party saw on its socket, in order.
    kinds = [m["type"] for m in _outbox(party)]
    assert kinds[:2] == ["joined", "waiting"]
    assert "admitted" in kinds
    assert kinds.index("admitted") < kinds.index("chat")
    assert kinds.count("side-room") == 2

    for participant in (mediator, party):
        await service.leave(participant, "left")
    assert [e[0] for e in events[-2:]] == ["leave", "leave"]
    assert service.rooms.rooms == {}


async def test_failing_hook_does_not_stop_join():
    service = SignalingService(RoomManager(), MediaSettings(), [], access=Access())

    async def broken(event, room, participant, **extra):
        raise RuntimeError("database is down")

    service.hooks.append(broken)
    participant = await service.handle(
        None, _parse({"type": "join", "room": "hooks-joint", "name": "分会场"})
    )
    assert participant.room.participants == {participant.id: participant}
    assert _outbox(participant)[0]["type"] == "joined"
    await service.leave(participant, "left")
