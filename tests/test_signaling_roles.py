"""Every role in every kind of session, through real signaling connections:
each action the permission table (hub/roles.py) denies is refused with
"forbidden", and each one it grants works.

The table itself is checked cell by cell in tests/test_roles.py; here the
hub must apply it to the messages that carry each action. The command tools
(push_camera, assign_task, view_cameras) have no signaling message and are
left to the dispatch API.
"""

from __future__ import annotations

import itertools

import pytest
from aiortc.mediastreams import AudioStreamTrack

from hub.roles import Action, Role, SessionKind, is_allowed
from tests.hubclient import HubClient
from tests.hubproc import run_hub
from tests.media_tracks import FlatVideoTrack
from tests.sessionclient import (
    AUTH_CONFIG,
    close_all,
    join_as,
    join_with,
    publish,
    request,
    token_for,
)

_rooms = itertools.count(1)

# (action, message) in the order they are sent; "{subject}", "{victim}" and
# "{waiting}" are replaced by peer ids of the room.
CONTROL_STEPS: list[tuple[Action, dict]] = [
    (Action.CHAT, {"type": "chat", "text": "请各分会场汇报"}),
    (Action.RAISE_HAND, {"type": "raise-hand"}),
    (Action.SUBSCRIBE, {"type": "subscribe", "tracks": []}),
    (Action.ROLL_CALL, {"type": "roll-call", "peer": "{subject}"}),
    (Action.ROLL_CALL, {"type": "attendance"}),
    (Action.GIVE_FLOOR, {"type": "give-floor", "peer": "{subject}"}),
    (Action.GIVE_FLOOR, {"type": "take-floor", "peer": "{subject}"}),
    (Action.MUTE_OTHERS, {"type": "mute-peer", "peer": "{subject}"}),
    (Action.MUTE_OTHERS, {"type": "mute-all"}),
    (Action.LOCK_ROOM, {"type": "lock"}),
    (Action.LOCK_ROOM, {"type": "unlock"}),
    (Action.START_RECORDING, {"type": "recording", "on": True}),
    (Action.SIDE_ROOM, {"type": "side-room", "peer": "{subject}"}),
    (Action.SIDE_ROOM, {"type": "return", "peer": "{subject}"}),
    (Action.ADMIT_PARTY, {"type": "admit", "peer": "{waiting}"}),
    (Action.REMOVE_PEER, {"type": "remove", "peer": "{victim}"}),
]
REPLY_TYPES = {"attendance": "attendance"}

PUBLISH_STEPS = [
    (Action.PUBLISH_CAMERA, "camera"),
    (Action.PUBLISH_MICROPHONE, "microphone"),
    (Action.SHARE_SCREEN, "screen"),
]

CASES = [
    (kind, role, admitted)
    for kind in SessionKind
    for role in Role
    for admitted in (
        (False, True) if (kind, role) == ("mediation", "party") else (True,)
    )
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(tmp_path_factory.mktemp("hub"), AUTH_CONFIG) as process:
        yield process


def _fill(message: dict, ids: dict[str, str]) -> dict:
    filled = {}
    for key, value in message.items():
        if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
            value = ids[value[1:-1]]
        filled[key] = value
    return filled


def _check_reply(reply: dict, allowed: bool, role: str, action: Action, message: dict):
    if allowed:
        expected = REPLY_TYPES.get(message["type"], "ok")
        assert reply["type"] == expected, (
            f"{role} {message['type']}: expected {expected}, got {reply}"
        )
    else:
        assert reply["type"] == "error", f"{role} {message['type']} was not refused"
        assert reply["code"] == "forbidden", reply
        assert f"{role.value!r}" in reply["message"]
        assert action.value in reply["message"]


async def _open_room(hub, kind: str) -> tuple[str, list[HubClient], dict[str, str]]:
    """Open a fresh room of `kind` with a subject and a victim to act on, and
    in a mediation a host and a waiting party."""
    room = f"roles-{kind}-{next(_rooms)}"
    subject = HubClient(hub.ws_url, room, "对象", token=token_for("observer", room))
    joined = await join_with(subject, {"kind": kind})
    assert joined["type"] == "joined", joined
    victim = await join_as(hub, "observer", room, "被移出者")
    clients = [subject, victim]
    ids = {"subject": subject.peer_id, "victim": victim.peer_id, "waiting": "p0"}
    if kind == "mediation":
        host = await join_as(hub, "mediator", room, "调解员")
        waiting = await join_as(hub, "party", room, "当事人")
        assert waiting.joined["waiting"] is True
        clients += [host, waiting]
        ids["host"] = host.peer_id
        ids["waiting"] = waiting.peer_id
    return room, clients, ids


@pytest.mark.parametrize(("kind", "role", "admitted"), CASES)
async def test_controls_follow_table(hub, kind, role, admitted):
    if role == "party" and kind != "mediation":
        room, clients, _ids = await _open_room(hub, kind)
        try:
            client = HubClient(hub.ws_url, room, "当事人", token=token_for(role, room))
            clients.append(client)
            reply = await client.join()
            assert reply["type"] == "error"
            assert reply["code"] == "forbidden"
        finally:
            await close_all(*clients)
        return

    room, clients, ids = await _open_room(hub, kind)
    try:
        actor = await join_as(hub, role, room, f"{role} 测试")
        clients.append(actor)
        assert actor.joined["role"] == role
        assert actor.joined["waiting"] is (kind == "mediation" and role == "party")
        # `joined` lists what the role may do on arrival: nothing yet for a
        # party in the waiting room.
        waits = kind == "mediation" and role == "party"
        expected_actions = sorted(
            action.value
            for action in Action
            if is_allowed(kind, role, action, admitted=not waits)
        )
        assert actor.joined["actions"] == expected_actions
        if role == "party" and admitted:
            host = next(c for c in clients if c.peer_id == ids["host"])
            reply = await request(host, {"type": "admit", "peer": actor.peer_id})
            assert reply["type"] == "ok", reply

        for action, template in CONTROL_STEPS:
            message = _fill(template, ids)
            allowed = is_allowed(kind, role, action, admitted=admitted)
            reply = await request(actor, message)
            _check_reply(reply, allowed, role, action, message)
    finally:
        await close_all(*clients)


@pytest.mark.parametrize(("kind", "role", "admitted"), CASES)
async def test_publishing_follows_table(hub, kind, role, admitted):
    if role == "party" and kind != "mediation":
        return
    room, clients, ids = await _open_room(hub, kind)
    try:
        for action, source in PUBLISH_STEPS:
            actor = await join_as(hub, role, room, f"{role} {source}", subscribe="none")
            clients.append(actor)
            if role == "party" and admitted:
                host = next(c for c in clients if c.peer_id == ids["host"])
                reply = await request(host, {"type": "admit", "peer": actor.peer_id})
                assert reply["type"] == "ok", reply
            track = AudioStreamTrack() if source == "microphone" else FlatVideoTrack(90)
            reply = await publish(actor, [(track, source)])
            allowed = is_allowed(kind, role, action, admitted=admitted)
            if allowed:
                assert reply["type"] == "answer", f"{role} {source}: {reply}"
                assert "refused" not in reply
            else:
                assert reply["type"] == "error", f"{role} {source} was not refused"
                assert reply["code"] == "forbidden", reply
                assert f"{role.value!r}" in reply["message"]
    finally:
        await close_all(*clients)
