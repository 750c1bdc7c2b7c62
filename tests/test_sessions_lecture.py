"""Lecture (培训讲座): the trainer teaches with camera and screen, the
audience raises hands and speaks only with the floor, questions go by chat,
and the trainer reads the attendance list."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.mediastreams import AudioStreamTrack

from tests.hubproc import run_hub, scaled
from tests.media_tracks import FlatVideoTrack
from tests.sessionclient import (
    AUTH_CONFIG,
    close_all,
    join_as,
    next_message,
    publish,
    publish_again,
    received_of,
    request,
    wait_until,
)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with run_hub(tmp_path_factory.mktemp("hub"), AUTH_CONFIG) as process:
        yield process


def _sources_of(client, peer: str) -> set[str]:
    return {t["source"] for t in client.tracks if t["peer"] == peer}


async def test_trainer_publishes_camera_and_screen(hub):
    room = "lecture-screen"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    viewer = await join_as(hub, "viewer", room, "学员")
    try:
        reply = await publish(
            trainer,
            [
                (FlatVideoTrack(80), "camera"),
                (FlatVideoTrack(160), "screen"),
                (AudioStreamTrack(), "microphone"),
            ],
        )
        assert reply["type"] == "answer"
        assert "refused" not in reply
        await wait_until(lambda: len(viewer.received) == 3, 20, "trainer's media")
        assert {r.source for r in viewer.received.values()} == {
            "camera",
            "screen",
            "microphone",
        }
    finally:
        await close_all(trainer, viewer)


async def test_viewer_speaks_only_with_floor(hub):
    room = "puer-training"
    trainer = await join_as(hub, "trainer", room, "主讲人")
    asker = await join_as(hub, "viewer", room, "思茅区学员")
    listener = await join_as(hub, "viewer", room, "宁洱县学员")
    try:
        reply = await publish(trainer, [(FlatVideoTrack(80), "camera")])
        assert reply["type"] == "answer"

        # Without the floor a viewer cannot publish anything.
        reply = await publish(
            asker, [(AudioStreamTrack(), "microphone"), (FlatVideoTrack(150), "camera")]
        )
        assert reply["type"] == "error"
        assert reply["code"] == "forbidden"
        assert "without the floor" in reply["message"]

        # The raised hand reaches the trainer, not the other viewers.
        hand = next_message(trainer, "hand")
        assert (await request(asker, {"type": "raise-hand"}))["type"] == "ok"
        message = await hand
        assert message == {
            "type": "hand",
            "peer": asker.peer_id,
            "name": "思茅区学员",
            "raised": True,
        }
        assert not received_of(listener, "hand")

        granted = next_message(asker, "permissions")
        floor = next_message(listener, "floor")
        reply = await request(trainer, {"type": "give-floor", "peer": asker.peer_id})
        assert reply["type"] == "ok"
        assert (await floor)["peer"] == asker.peer_id
        actions = (await granted)["actions"]
        assert "publish_microphone" in actions
        assert "publish_camera" in actions

        # With the floor, the same offer goes through and the others hear it.
        reply = await publish_again(asker)
        assert reply["type"] == "answer"
        assert "refused" not in reply
        await wait_until(
            lambda: _sources_of(listener, asker.peer_id) == {"microphone", "camera"},
            10,
            "asker's tracks",
        )
        await wait_until(
            lambda: any(
                r.peer == asker.peer_id and r.kind == "audio"
                for r in listener.received.values()
            ),
            20,
            "asker's audio at the listener",
        )
        audio = next(
            r
            for r in listener.received.values()
            if r.peer == asker.peer_id and r.kind == "audio"
        )
        frames = [
            await asyncio.wait_for(audio.track.recv(), scaled(10)) for _ in range(5)
        ]
        assert frames[-1].pts > frames[0].pts

        # Taking the floor back ends the asker's tracks for everyone.
        revoked = next_message(asker, "permissions")
        reply = await request(trainer, {"type": "take-floor", "peer": asker.peer_id})
        assert reply["type"] == "ok"
        assert "publish_microphone" not in (await revoked)["actions"]
        await wait_until(
            lambda: _sources_of(listener, asker.peer_id) == set(),
            10,
            "asker's tracks ended",
        )
        reply = await publish_again(asker)
        assert reply["code"] == "forbidden"
    finally:
        await close_all(trainer, asker, listener)


async def test_member_site_keeps_camera_only(hub):
    room = "lecture-site"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    site = await join_as(hub, "member", room, "南屏镇分会场")
    try:
        reply = await publish(
            site, [(FlatVideoTrack(120), "camera"), (AudioStreamTrack(), "microphone")]
        )
        assert reply["type"] == "answer"
        mic_mid = next(mid for mid, s in site.sources.items() if s == "microphone")
        assert [r["mid"] for r in reply["refused"]] == [mic_mid]
        assert reply["refused"][0]["code"] == "forbidden"
        await wait_until(
            lambda: _sources_of(trainer, site.peer_id) == {"camera"}, 10, "camera"
        )
        await wait_until(lambda: len(trainer.received) == 1, 20, "site camera")

        await request(trainer, {"type": "give-floor", "peer": site.peer_id})
        reply = await publish_again(site)
        assert "refused" not in reply
        await wait_until(
            lambda: _sources_of(trainer, site.peer_id) == {"camera", "microphone"},
            10,
            "microphone after the floor",
        )
    finally:
        await close_all(trainer, site)


async def test_relabelled_section_needs_permission(hub):
    room = "lecture-relabel"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    site = await join_as(hub, "member", room, "分会场")
    try:
        reply = await publish(
            site, [(FlatVideoTrack(120), "camera"), (FlatVideoTrack(200), "camera")]
        )
        assert reply["type"] == "answer"
        await wait_until(
            lambda: len([t for t in trainer.tracks if t["peer"] == site.peer_id]) == 2,
            10,
            "two cameras",
        )
        first, second = sorted(site.sources)
        # One of the cameras relabelled as a screen share is stopped.
        site.sources = {first: "camera", second: "screen"}
        reply = await publish_again(site)
        assert reply["type"] == "answer"
        assert [r["mid"] for r in reply["refused"]] == [second]
        assert "share_screen" in reply["refused"][0]["message"]
        await wait_until(
            lambda: (
                [t["source"] for t in trainer.tracks if t["peer"] == site.peer_id]
                == ["camera"]
            ),
            10,
            "only the first camera",
        )
        # Relabelling every section is refused as a whole.
        site.sources = {first: "screen", second: "screen"}
        reply = await publish_again(site)
        assert reply["type"] == "error"
        assert reply["code"] == "forbidden"
    finally:
        await close_all(trainer, site)


async def test_source_must_match_kind(hub):
    room = "lecture-kind"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    try:
        reply = await publish(trainer, [(AudioStreamTrack(), "camera")])
        assert reply["type"] == "error"
        assert reply["code"] == "bad-message"
        assert "audio" in reply["message"]
    finally:
        await trainer.close()


async def test_questions_by_chat(hub):
    room = "lecture-chat"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    viewer = await join_as(hub, "viewer", room, "学员")
    observer = await join_as(hub, "observer", room, "旁听")
    try:
        question = next_message(trainer, "chat")
        reply = await request(viewer, {"type": "chat", "text": "请问调解书如何送达？"})
        assert reply["type"] == "ok"
        assert (await question)["peer"] == viewer.peer_id
        await wait_until(lambda: received_of(observer, "chat"), 10, "chat at observer")
        reply = await request(observer, {"type": "chat", "text": "旁听提问"})
        assert reply["code"] == "forbidden"
    finally:
        await close_all(trainer, viewer, observer)


async def test_attendance_lists_arrivals(hub):
    room = "lecture-attendance"
    trainer = await join_as(hub, "trainer", room, "主讲人", kind="lecture")
    first = await join_as(hub, "member", room, "思茅区分会场")
    second = await join_as(hub, "viewer", room, "宁洱县学员")
    try:
        await second.send({"type": "leave"})
        await wait_until(lambda: second.peer_id not in trainer.peers, 10, "leave")
        reply = await request(trainer, {"type": "attendance"})
        assert reply["type"] == "attendance"
        entries = {e["name"]: e for e in reply["entries"]}
        assert set(entries) == {"主讲人", "思茅区分会场", "宁洱县学员"}
        assert entries["思茅区分会场"]["present"] is True
        assert entries["思茅区分会场"]["role"] == "member"
        assert entries["思茅区分会场"]["unit"] == "puer.simao"
        assert entries["宁洱县学员"]["present"] is False
        assert entries["宁洱县学员"]["lastLeft"].endswith("Z")
        reply = await request(first, {"type": "attendance"})
        assert reply["code"] == "forbidden"
    finally:
        await close_all(trainer, first, second)
