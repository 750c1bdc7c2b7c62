"""Joint command session (联合会商): roll call, mute all, floor, chat and
removal, with the chair and member rooms on real signaling connections."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import AudioStreamTrack

from tests.hubproc import run_hub
from tests.media_tracks import FlatVideoTrack
from tests.sessionclient import (
    AUTH_CONFIG,
    close_all,
    join_as,
    next_message,
    publish,
    received_of,
    request,
    wait_until,
)

ROOM = "puer-joint"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(tmp_path_factory.mktemp("hub"), AUTH_CONFIG) as process:
        yield process


async def _session(hub, room: str, *members: str):
    chair = await join_as(hub, "chair", room, "普洱市指挥中心")
    others = [await join_as(hub, "member", room, name) for name in members]
    return chair, others


async def test_roll_call_spotlights_room(hub):
    chair, (simao, ninger) = await _session(hub, ROOM, "思茅区指挥室", "宁洱县指挥室")
    late = None
    try:
        waits = [next_message(c, "spotlight") for c in (chair, simao, ninger)]
        reply = await request(chair, {"type": "roll-call", "peer": simao.peer_id})
        assert reply["type"] == "ok"
        for wait in waits:
            message = await wait
            assert message["peer"] == simao.peer_id
            assert message["name"] == "思茅区指挥室"
            assert message["by"] == chair.peer_id
            assert message["byName"] == "普洱市指挥中心"

        # A room joining later sees who is in the spotlight.
        late = await join_as(hub, "member", ROOM, "墨江县指挥室")
        assert late.joined["session"]["spotlight"] == simao.peer_id

        cleared = next_message(ninger, "spotlight")
        await request(chair, {"type": "roll-call", "peer": None})
        assert (await cleared)["peer"] is None

        reply = await request(chair, {"type": "roll-call", "peer": "p999999"})
        assert reply["code"] == "not-found"
    finally:
        await close_all(chair, simao, ninger, *([late] if late else []))


async def test_mute_all_marks_microphones(hub):
    chair, (simao, ninger) = await _session(
        hub, "joint-mute", "思茅区指挥室", "宁洱县指挥室"
    )
    try:
        for level, client in ((60, chair), (130, simao), (200, ninger)):
            reply = await publish(
                client,
                [(FlatVideoTrack(level), "camera"), (AudioStreamTrack(), "microphone")],
            )
            assert reply["type"] == "answer"
        await wait_until(lambda: len(chair.tracks) == 6, 10, "six tracks")

        asked = [next_message(c, "muted-by-chair") for c in (simao, ninger)]
        reply = await request(chair, {"type": "mute-all"})
        assert reply["type"] == "ok"
        for wait in asked:
            message = await wait
            assert message["source"] == "microphone"
            assert message["by"] == chair.peer_id

        def muted_flags():
            return {(t["peer"], t["source"]): t["muted"] for t in chair.tracks}

        await wait_until(
            lambda: muted_flags().get((simao.peer_id, "microphone")) is True,
            10,
            "microphones marked muted",
        )
        flags = muted_flags()
        assert flags[(ninger.peer_id, "microphone")] is True
        assert flags[(chair.peer_id, "microphone")] is False
        assert flags[(simao.peer_id, "camera")] is False
        assert not received_of(chair, "muted-by-chair")

        # One room alone.
        asked = next_message(simao, "muted-by-chair")
        reply = await request(
            chair, {"type": "mute-peer", "peer": simao.peer_id, "source": "camera"}
        )
        assert reply["type"] == "ok"
        assert (await asked)["source"] == "camera"
    finally:
        await close_all(chair, simao, ninger)


async def test_give_floor_moves_floor(hub):
    chair, (simao, ninger) = await _session(
        hub, "joint-floor", "思茅区指挥室", "宁洱县指挥室"
    )
    try:
        floor = next_message(ninger, "floor")
        granted = next_message(simao, "permissions")
        reply = await request(chair, {"type": "give-floor", "peer": simao.peer_id})
        assert reply["type"] == "ok"
        message = await floor
        assert message["peer"] == simao.peer_id
        assert message["name"] == "思茅区指挥室"
        assert (await granted)["role"] == "member"

        floor = next_message(chair, "floor")
        await request(chair, {"type": "give-floor", "peer": ninger.peer_id})
        assert (await floor)["peer"] == ninger.peer_id

        # Only the holder's floor can be taken back by naming it.
        reply = await request(chair, {"type": "take-floor", "peer": simao.peer_id})
        assert reply["code"] == "conflict"
        floor = next_message(simao, "floor")
        reply = await request(ninger, {"type": "take-floor"})
        assert reply["type"] == "ok"
        assert (await floor)["peer"] is None
    finally:
        await close_all(chair, simao, ninger)


async def test_chat_broadcast_with_history(hub):
    room = "joint-chat"
    chair, members = await _session(hub, room, *(f"分会场{i}" for i in range(5)))
    clients = [chair, *members]
    late = None
    try:
        heard = [next_message(c, "chat") for c in clients]
        reply = await request(
            members[0], {"type": "chat", "text": "  收到，正在核实  "}
        )
        assert reply["type"] == "ok"
        for wait in heard:
            message = await wait
            assert message["peer"] == members[0].peer_id
            assert message["name"] == "分会场0"
            assert message["text"] == "收到，正在核实"
            assert message["at"].endswith("Z")

        # 1 + 6 * 18 = 109 messages; the room keeps the last 100, so the
        # first message and the chair's first eight are gone.
        for client in clients:
            for index in range(18):
                text = f"{client.name} 第{index}条"
                assert (await request(client, {"type": "chat", "text": text}))[
                    "type"
                ] == "ok"
        late = await join_as(hub, "member", room, "墨江县指挥室")
        history = late.joined["chat"]
        assert len(history) == 100
        assert history[-1]["text"] == f"{clients[-1].name} 第17条"
        assert history[0]["text"] == f"{clients[0].name} 第8条"
    finally:
        await close_all(*clients, *([late] if late else []))


@pytest.mark.parametrize("text", ["", "   ", "字" * 2001, 42, None])
async def test_chat_text_checked(hub, text):
    chair, _ = await _session(hub, "joint-chat-bad")
    try:
        reply = await request(chair, {"type": "chat", "text": text})
        assert reply["type"] == "error"
        assert reply["code"] == "bad-message"
    finally:
        await chair.close()


async def test_chat_flood_rate_limited(hub):
    chair, _ = await _session(hub, "joint-flood")
    try:
        replies = [
            await request(chair, {"type": "chat", "text": f"刷屏{i}"})
            for i in range(40)
        ]
        codes = [r.get("code") for r in replies if r["type"] == "error"]
        assert codes, "40 chat messages at once were all accepted"
        assert set(codes) == {"rate-limited"}
        assert replies[0]["type"] == "ok"
    finally:
        await chair.close()


async def test_removed_room_closed_with_4409(hub):
    chair, (simao, ninger) = await _session(
        hub, "joint-remove", "思茅区指挥室", "宁洱县指挥室"
    )
    try:
        told = next_message(simao, "removed")
        left = next_message(ninger, "peer-left")
        reply = await request(chair, {"type": "remove", "peer": simao.peer_id})
        assert reply["type"] == "ok"
        message = await told
        assert message["by"] == chair.peer_id
        assert await left == {
            "type": "peer-left",
            "peer": simao.peer_id,
            "reason": "removed",
        }
        # The hub closes the removed client's socket without waiting for it.
        await asyncio.wait_for(simao.ws.wait_closed(), 10)
        assert simao.ws.close_code == 4409

        reply = await request(chair, {"type": "remove", "peer": chair.peer_id})
        assert reply["code"] == "bad-message"
        reply = await request(chair, {"type": "remove", "peer": simao.peer_id})
        assert reply["code"] == "not-found"
    finally:
        await close_all(chair, simao, ninger)


async def test_peer_info_carries_role(hub):
    chair, (simao,) = await _session(hub, "joint-info", "思茅区指挥室")
    try:
        assert simao.joined["peers"] == [
            {"id": chair.peer_id, "name": "普洱市指挥中心", "role": "chair"}
        ]
        await wait_until(lambda: simao.peer_id in chair.peers, 10, "peer-joined")
        assert chair.peers[simao.peer_id]["role"] == "member"
    finally:
        await close_all(chair, simao)
