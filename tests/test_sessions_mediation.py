"""Mediation hearing (视频调解): the waiting room, admission, the side room
(背靠背), lock, recording notice and removal, with the mediator and the
parties on real signaling connections and real media where it matters."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from aiortc.mediastreams import AudioStreamTrack

from tests.hubclient import HubClient
from tests.hubproc import run_hub, scaled
from tests.media_tracks import FlatVideoTrack, mean_luma
from tests.sessionclient import (
    AUTH_CONFIG,
    close_all,
    join_as,
    next_message,
    owners_offered,
    publish,
    received_of,
    request,
    token_for,
    wait_until,
)

LEVELS = {"mediator": 60, "party-a": 130, "party-b": 200}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(tmp_path_factory.mktemp("hub"), AUTH_CONFIG) as process:
        yield process


def _room_stats(hub, room: str) -> dict:
    stats = httpx.get(f"{hub.url}/api/stats", timeout=scaled(5)).json()
    return next(r for r in stats["rooms"] if r["id"] == room)


async def _admit(mediator, party) -> dict:
    admitted = next_message(party, "admitted")
    reply = await request(mediator, {"type": "admit", "peer": party.peer_id})
    assert reply["type"] == "ok", reply
    return await admitted


async def _frame_luma(client, peer: str) -> float:
    """Return the mean luma of the next video frame `client` gets from `peer`."""
    received = next(
        r for r in client.received.values() if r.peer == peer and r.kind == "video"
    )
    frame = await asyncio.wait_for(received.track.recv(), scaled(10))
    return mean_luma(frame)


async def test_party_waits_until_admitted(hub):
    room = "hearing-wait"
    # The first join names the kind of a room outside the org tree.
    mediator = await join_as(hub, "mediator", room, "调解员", kind="mediation")
    clerk = await join_as(hub, "member", room, "书记员")
    party = None
    try:
        reply = await publish(
            mediator,
            [
                (FlatVideoTrack(LEVELS["mediator"]), "camera"),
                (AudioStreamTrack(), "microphone"),
            ],
        )
        assert reply["type"] == "answer"
        await wait_until(lambda: len(clerk.tracks) == 2, 10, "mediator's tracks")

        listed = next_message(mediator, "waiting-list")
        party = await join_as(hub, "party", room, "当事人甲")
        joined = party.joined
        assert joined["waiting"] is True
        assert joined["peers"] == []
        assert joined["tracks"] == []
        assert joined["actions"] == []
        await wait_until(lambda: received_of(party, "waiting"), 10, "waiting")
        assert received_of(party, "waiting")[0]["room"] == room

        waiting_list = await listed
        assert [p["id"] for p in waiting_list["peers"]] == [party.peer_id]
        assert waiting_list["peers"][0]["name"] == "当事人甲"
        assert waiting_list["peers"][0]["role"] == "party"

        # Nobody but the hosts learns about a waiting party.
        assert party.peer_id not in clerk.peers
        assert not received_of(clerk, "waiting-list")

        # A waiting party can neither publish, subscribe nor chat.
        reply = await publish(party, [(AudioStreamTrack(), "microphone")])
        assert reply["code"] == "forbidden"
        assert "admitted" in reply["message"]
        reply = await request(party, {"type": "subscribe", "tracks": []})
        assert reply["code"] == "forbidden"
        reply = await request(party, {"type": "chat", "text": "你好"})
        assert reply["code"] == "forbidden"
        assert not received_of(party, "offer")

        joined_clerk = next_message(clerk, "peer-joined")
        emptied = next_message(mediator, "waiting-list")
        admitted = await _admit(mediator, party)
        assert {p["id"] for p in admitted["peers"]} == {mediator.peer_id, clerk.peer_id}
        assert "publish_microphone" in admitted["actions"]
        assert (await joined_clerk)["peer"]["id"] == party.peer_id
        assert (await emptied)["peers"] == []
        await wait_until(lambda: mediator.peer_id in party.peers, 10, "peer-joined")

        # Admitted, the party sees and hears the mediator.
        await wait_until(lambda: len(party.received) == 2, 20, "mediator's media")
        luma = await _frame_luma(party, mediator.peer_id)
        assert abs(luma - LEVELS["mediator"]) < 8
    finally:
        await close_all(mediator, clerk, *([party] if party else []))


async def _hearing(hub, room: str):
    """A mediator and two admitted parties, each publishing camera and mic."""
    mediator = await join_as(hub, "mediator", room, "调解员")
    party_a = await join_as(hub, "party", room, "当事人甲")
    party_b = await join_as(hub, "party", room, "当事人乙")
    await _admit(mediator, party_a)
    await _admit(mediator, party_b)
    clients = {"mediator": mediator, "party-a": party_a, "party-b": party_b}
    for name, client in clients.items():
        reply = await publish(
            client,
            [
                (FlatVideoTrack(LEVELS[name]), "camera"),
                (AudioStreamTrack(), "microphone"),
            ],
        )
        assert reply["type"] == "answer", reply
    for client in clients.values():
        await wait_until(lambda c=client: len(c.received) == 4, 20, "four tracks")
    return mediator, party_a, party_b


async def test_side_room_isolates_media(hub):
    room = "puer-mediation"
    mediator, party_a, party_b = await _hearing(hub, room)
    everyone = (mediator, party_a, party_b)
    try:
        notices = [next_message(c, "side-room") for c in everyone]
        offers = {c.peer_id: next_message(c, "offer") for c in everyone}
        reply = await request(mediator, {"type": "side-room", "peer": party_a.peer_id})
        assert reply["type"] == "ok"
        for wait in notices:
            assert await wait == {
                "type": "side-room",
                "peer": party_a.peer_id,
                "host": mediator.peer_id,
            }
        for wait in offers.values():
            await wait
        await asyncio.sleep(0)

        # Party B hears and sees neither; A and the mediator only each other.
        assert owners_offered(party_b) == set()
        assert owners_offered(party_a) == {mediator.peer_id}
        assert owners_offered(mediator) == {party_a.peer_id}
        stats = _room_stats(hub, room)
        for track in stats["tracks"]:
            receivers = {out["peer"] for out in track["out"]}
            if track["peer"] == party_b.peer_id:
                assert receivers == set()
            elif track["peer"] == party_a.peer_id:
                assert receivers == {mediator.peer_id}
            else:
                assert receivers == {party_a.peer_id}

        # One side room at a time; return names the party in it.
        reply = await request(mediator, {"type": "side-room", "peer": party_b.peer_id})
        assert reply["code"] == "conflict"
        reply = await request(mediator, {"type": "return", "peer": party_b.peer_id})
        assert reply["code"] == "conflict"
        joined = await join_as(hub, "member", room, "书记员")
        assert joined.joined["session"]["sideRoom"] == {
            "host": mediator.peer_id,
            "peer": party_a.peer_id,
        }
        await joined.close()

        back = [next_message(c, "side-room") for c in everyone]
        reply = await request(mediator, {"type": "return", "peer": party_a.peer_id})
        assert reply["type"] == "ok"
        for wait in back:
            assert (await wait)["peer"] is None
        for client in everyone:
            others = {c.peer_id for c in everyone if c is not client}
            await wait_until(
                lambda c=client, o=others: owners_offered(c) == o, 10, "all media back"
            )
        # Party B sees party A's picture again.
        await wait_until(
            lambda: any(
                r.peer == party_a.peer_id and r.kind == "video"
                for r in party_b.received.values()
            ),
            10,
            "party A's video at party B",
        )
        received = [
            r
            for r in party_b.received.values()
            if r.peer == party_a.peer_id and r.kind == "video"
        ]
        frame = await asyncio.wait_for(received[-1].track.recv(), scaled(10))
        assert abs(mean_luma(frame) - LEVELS["party-a"]) < 8
    finally:
        await close_all(*everyone)


async def test_host_leaving_ends_side_room(hub):
    room = "simao-mediation"
    mediator, party_a, party_b = await _hearing(hub, room)
    try:
        await request(mediator, {"type": "side-room", "peer": party_a.peer_id})
        await wait_until(lambda: owners_offered(party_b) == set(), 10, "isolation")
        ended = next_message(party_b, "side-room")
        await mediator.send({"type": "leave"})
        assert (await ended)["peer"] is None
        await wait_until(
            lambda: owners_offered(party_b) == {party_a.peer_id}, 10, "A back at B"
        )
    finally:
        await close_all(mediator, party_a, party_b)


async def test_lock_refuses_new_party(hub):
    room = "ninger-mediation"
    mediator = await join_as(hub, "mediator", room, "调解员")
    party = await join_as(hub, "party", room, "当事人甲")
    late = None
    try:
        told = next_message(mediator, "locked")
        assert (await request(mediator, {"type": "lock"}))["type"] == "ok"
        message = await told
        assert message["locked"] is True
        assert message["by"] == mediator.peer_id
        late = HubClient(hub.ws_url, room, "当事人乙", token=token_for("party", room))
        reply = await late.join()
        assert reply["type"] == "error"
        assert reply["code"] == "forbidden"
        assert "locked" in reply["message"]
        await late.close()

        assert (await request(mediator, {"type": "unlock"}))["type"] == "ok"
        late = await join_as(hub, "party", room, "当事人乙")
        assert late.joined["waiting"] is True
    finally:
        await close_all(mediator, party, *([late] if late else []))


async def test_recording_notice_reaches_everyone(hub):
    room = "simao-simao-mediation"
    mediator = await join_as(hub, "mediator", room, "调解员")
    admitted = await join_as(hub, "party", room, "当事人甲")
    await _admit(mediator, admitted)
    waiting = await join_as(hub, "party", room, "当事人乙")
    try:
        notices = [next_message(c, "recording") for c in (mediator, admitted, waiting)]
        reply = await request(mediator, {"type": "recording", "on": True})
        assert reply["type"] == "ok"
        for wait in notices:
            message = await wait
            assert message["on"] is True
            assert message["by"] == mediator.peer_id
        reply = await request(admitted, {"type": "recording", "on": False})
        assert reply["code"] == "forbidden"
        await _admit(mediator, waiting)
        assert received_of(waiting, "admitted")[0]["session"]["recording"] is True
    finally:
        await close_all(mediator, admitted, waiting)


async def test_remove_waiting_party(hub):
    room = "simao-nanping-mediation"
    mediator = await join_as(hub, "mediator", room, "调解员")
    party = await join_as(hub, "party", room, "当事人甲")
    try:
        told = next_message(party, "removed")
        listed = next_message(mediator, "waiting-list")
        reply = await request(mediator, {"type": "remove", "peer": party.peer_id})
        assert reply["type"] == "ok"
        await told
        assert (await listed)["peers"] == []
        await asyncio.wait_for(party.ws.wait_closed(), 10)
        assert party.ws.close_code == 4409
    finally:
        await close_all(mediator, party)


async def test_waiting_party_leaving_updates_list(hub):
    room = "hearing-leave"
    mediator = await join_as(hub, "mediator", room, "调解员", kind="mediation")
    party = await join_as(hub, "party", room, "当事人甲")
    try:
        listed = next_message(mediator, "waiting-list")
        await party.send({"type": "leave"})
        assert (await listed)["peers"] == []
        reply = await request(mediator, {"type": "admit", "peer": party.peer_id})
        assert reply["code"] == "not-found"
    finally:
        await close_all(mediator, party)
