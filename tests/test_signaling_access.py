"""Who gets into a room, in which role: tokens at join, default roles, room
kinds, locked rooms and invite links, against `hub serve` in a subprocess."""

from __future__ import annotations

import json

import httpx
import pytest
import websockets

from hub.auth import mint_token
from tests.hubclient import HubClient
from tests.hubproc import run_hub, scaled
from tests.sessionclient import (
    AUTH_CONFIG,
    JOINT_ROOM,
    LECTURE_ROOM,
    MEDIATION_ROOM,
    close_all,
    join_as,
    join_with,
    next_message,
    request,
    token_for,
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(tmp_path_factory.mktemp("hub"), AUTH_CONFIG) as process:
        yield process


@pytest.fixture(scope="module")
def strict_hub(tmp_path_factory):
    extra = AUTH_CONFIG.replace("[auth]\n", "[auth]\nrequired = true\n")
    with run_hub(tmp_path_factory.mktemp("strict"), extra) as process:
        yield process


async def _join_refused(hub, room: str, **fields) -> tuple[dict, int | None]:
    """Join with raw fields; return the error and the socket's close code."""
    async with websockets.connect(hub.ws_url) as ws:
        await ws.send(
            json.dumps(
                {"type": "join", "version": 1, "room": room, "name": "x", **fields}
            )
        )
        reply = json.loads(await ws.recv())
        try:
            # An open socket answers the ping; a closed one raises.
            await ws.send(json.dumps({"type": "ping"}))
            pong = json.loads(await ws.recv())
        except websockets.ConnectionClosed as closed:
            return reply, closed.rcvd.code if closed.rcvd else None
        assert pong["type"] == "pong"
        return reply, None


# --- tokens -----------------------------------------------------------------


async def test_required_auth_refuses_missing_token(strict_hub):
    reply, code = await _join_refused(strict_hub, JOINT_ROOM)
    assert reply["type"] == "error"
    assert reply["code"] == "unauthorized"
    assert "missing token" in reply["message"]
    assert code == 4401


async def test_required_auth_accepts_token(strict_hub):
    client = await join_as(strict_hub, "chair", JOINT_ROOM, "普洱市指挥中心")
    try:
        assert client.joined["role"] == "chair"
        assert client.joined["name"] == "普洱市指挥中心"
        assert "mute_others" in client.joined["actions"]
    finally:
        await client.close()


async def test_forged_token_refused(hub):
    forged = mint_token(
        "another-secret-0123456789-abcdefghijklmn", "x", "puer", "chair"
    )
    reply, code = await _join_refused(hub, JOINT_ROOM, token=forged)
    assert reply["code"] == "unauthorized"
    assert "bad signature" in reply["message"]
    assert code == 4401


async def test_token_of_other_room_refused(hub):
    token = token_for("chair", LECTURE_ROOM)
    reply, code = await _join_refused(hub, JOINT_ROOM, token=token)
    assert reply["code"] == "unauthorized"
    assert LECTURE_ROOM in reply["message"]
    assert code == 4401


async def test_garbage_token_refused(hub):
    reply, code = await _join_refused(hub, JOINT_ROOM, token="not.a.token")
    assert reply["code"] == "unauthorized"
    assert code == 4401


async def test_token_name_overrides_join_name(hub):
    token = token_for("member", JOINT_ROOM, name="思茅区指挥室")
    client = HubClient(hub.ws_url, JOINT_ROOM, "假名字", token=token)
    try:
        joined = await client.join()
        assert joined["name"] == "思茅区指挥室"
    finally:
        await client.close()


# --- default roles and kinds ------------------------------------------------


@pytest.mark.parametrize(
    ("room", "kind", "role", "waiting"),
    [
        (JOINT_ROOM, "joint", "member", False),
        (LECTURE_ROOM, "lecture", "viewer", False),
        (MEDIATION_ROOM, "mediation", "party", True),
    ],
)
async def test_default_role_without_token(hub, room, kind, role, waiting):
    client = await join_as(hub, None, room, "访客")
    try:
        assert client.joined["role"] == role
        assert client.joined["session"]["kind"] == kind
        assert client.joined["waiting"] is waiting
    finally:
        await client.close()


async def test_join_kind_opens_room_outside_tree(hub):
    first = HubClient(hub.ws_url, "ad-hoc-lecture", "主讲")
    second = HubClient(hub.ws_url, "ad-hoc-lecture", "学员")
    try:
        first_message = {"kind": "lecture"}
        first.token = token_for("trainer", "ad-hoc-lecture")
        joined = await join_with(first, first_message)
        assert joined["session"]["kind"] == "lecture"
        assert joined["role"] == "trainer"
        # Later joins without a kind get the room's kind.
        joined = await second.join()
        assert joined["session"]["kind"] == "lecture"
        assert joined["role"] == "viewer"
    finally:
        await close_all(first, second)


async def test_join_kind_conflicting_with_tree(hub):
    client = HubClient(hub.ws_url, JOINT_ROOM, "x")
    try:
        reply = await join_with(client, {"kind": "mediation"})
        assert reply["type"] == "error"
        assert reply["code"] == "conflict"
        assert "joint" in reply["message"]
    finally:
        await client.close()


async def test_join_kind_conflicting_with_open_room(hub):
    first = HubClient(hub.ws_url, "ad-hoc-joint", "A")
    second = HubClient(hub.ws_url, "ad-hoc-joint", "B")
    try:
        assert (await join_with(first, {"kind": "joint"}))["type"] == "joined"
        reply = await join_with(second, {"kind": "lecture"})
        assert reply["code"] == "conflict"
    finally:
        await close_all(first, second)


async def test_unknown_join_kind_is_bad_message(hub):
    client = HubClient(hub.ws_url, "ad-hoc-x", "x")
    try:
        reply = await join_with(client, {"kind": "party"})
        assert reply["code"] == "bad-message"
    finally:
        await client.close()


async def test_party_refused_in_joint_session(hub):
    token = token_for("party", JOINT_ROOM)
    reply, code = await _join_refused(hub, JOINT_ROOM, token=token)
    assert reply["code"] == "forbidden"
    assert "party" in reply["message"]
    # Forbidden keeps the socket open for another try.
    assert code is None


# --- lock ---------------------------------------------------------------------


async def test_locked_room_refuses_new_joins(hub):
    chair = await join_as(hub, "chair", "lock-test-1", "主持")
    guests = []
    try:
        assert (await request(chair, {"type": "lock"}))["type"] == "ok"
        reply, code = await _join_refused(hub, "lock-test-1")
        assert reply["code"] == "forbidden"
        assert "locked" in reply["message"]
        assert code is None
        # A host may still come in, for example after a dropped connection.
        guests.append(await join_as(hub, "chair", "lock-test-1", "副主持"))
        assert (await request(chair, {"type": "unlock"}))["type"] == "ok"
        guests.append(await join_as(hub, None, "lock-test-1", "分会场"))
    finally:
        await close_all(chair, *guests)


# --- invites ------------------------------------------------------------------


def _invite(hub, token: str | None, body: dict) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(
        f"{hub.url}/api/invites", json=body, headers=headers, timeout=scaled(10)
    )


def test_invite_needs_bearer_token(hub):
    response = _invite(hub, None, {"room": MEDIATION_ROOM, "name": "李某"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_invite_refused_to_member(hub):
    token = token_for("member", MEDIATION_ROOM)
    response = _invite(hub, token, {"room": MEDIATION_ROOM, "name": "李某"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert "member" in error["message"]


def test_invite_refused_for_joint_room(hub):
    token = token_for("chair", JOINT_ROOM)
    response = _invite(hub, token, {"room": JOINT_ROOM, "name": "李某"})
    assert response.status_code == 403


def test_invite_for_unknown_room_not_found(hub):
    token = token_for("mediator")
    response = _invite(hub, token, {"room": "no-such-room", "name": "李某"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    "body",
    [
        {"room": MEDIATION_ROOM},
        {"room": MEDIATION_ROOM, "name": ""},
        {"room": MEDIATION_ROOM, "name": "李某", "hours": 0},
        {"room": MEDIATION_ROOM, "name": "李某", "hours": 10_000},
        {"room": MEDIATION_ROOM, "name": "李某", "hours": True},
        ["not", "an", "object"],
    ],
)
def test_invite_bad_body(hub, body):
    token = token_for("mediator", MEDIATION_ROOM)
    response = _invite(hub, token, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad-message"


async def test_invite_admits_party_once(hub):
    mediator_token = token_for("mediator", MEDIATION_ROOM)
    response = _invite(hub, mediator_token, {"room": MEDIATION_ROOM, "name": "李某某"})
    assert response.status_code == 201
    invite = response.json()
    assert invite["url"] == hub.url + invite["path"]
    assert invite["path"].startswith(f"/join?room={MEDIATION_ROOM}&invite=")
    invite_token = invite["path"].split("invite=", 1)[1]

    # The link opens the conference page with room and invite in the query.
    followed = httpx.get(
        hub.url + invite["path"], timeout=scaled(10), follow_redirects=True
    )
    assert followed.status_code == 200
    assert str(followed.url).startswith(f"{hub.url}/?room={MEDIATION_ROOM}")

    mediator = await join_as(
        hub, "mediator", MEDIATION_ROOM, "调解员", token=mediator_token
    )
    party = again = None
    try:
        party = await join_as(hub, None, MEDIATION_ROOM, "x", token=invite_token)
        assert party.joined["role"] == "party"
        assert party.joined["name"] == "李某某"
        assert party.joined["waiting"] is True
        session_token = party.joined["token"]
        assert session_token != invite_token

        # A second use of the link is refused.
        reply, code = await _join_refused(hub, MEDIATION_ROOM, token=invite_token)
        assert reply["code"] == "unauthorized"
        assert "already used" in reply["message"]
        assert code == 4401

        # Once admitted, the party's session token lets it back in directly.
        admitted = next_message(party, "admitted")
        assert (await request(mediator, {"type": "admit", "peer": party.peer_id}))[
            "type"
        ] == "ok"
        await admitted
        await party.close()
        again = await join_as(hub, None, MEDIATION_ROOM, "x", token=session_token)
        assert again.joined["waiting"] is False
        assert again.joined["role"] == "party"
        assert "token" not in again.joined
    finally:
        await close_all(mediator, *(c for c in (party, again) if c is not None))


async def test_invite_not_used_up_by_locked_room(hub):
    mediator = await join_as(hub, "mediator", MEDIATION_ROOM, "调解员")
    party = None
    try:
        token = mediator.token
        response = _invite(hub, token, {"room": MEDIATION_ROOM, "name": "王某"})
        invite_token = response.json()["path"].split("invite=", 1)[1]
        assert (await request(mediator, {"type": "lock"}))["type"] == "ok"
        reply, _ = await _join_refused(hub, MEDIATION_ROOM, token=invite_token)
        assert reply["code"] == "forbidden"
        assert (await request(mediator, {"type": "unlock"}))["type"] == "ok"
        party = await join_as(hub, None, MEDIATION_ROOM, "x", token=invite_token)
        assert party.joined["waiting"] is True
    finally:
        await close_all(mediator, *(c for c in (party,) if c is not None))
