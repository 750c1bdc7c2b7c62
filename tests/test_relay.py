"""The SFU relay end to end: `hub serve` in a subprocess, aiortc clients."""

from __future__ import annotations

import asyncio
import time

import httpx
from aiortc.mediastreams import AudioStreamTrack

from tests.hubclient import HubClient
from tests.hubproc import run_hub, scaled
from tests.media_tracks import FlatVideoTrack, mean_luma

LEVELS = {"A": 60, "B": 130, "C": 200}


async def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _frames(track, count: int) -> list:
    frames = []
    for _ in range(count):
        frames.append(await asyncio.wait_for(track.recv(), scaled(10)))
    return frames


def _stats(hub) -> dict:
    return httpx.get(f"{hub.url}/api/stats", timeout=5).json()


async def _join_publishing(hub, room: str, name: str) -> HubClient:
    client = HubClient(hub.ws_url, room, name)
    reply = await client.join()
    assert reply["type"] == "joined", reply
    await client.publish(
        [(FlatVideoTrack(LEVELS[name]), "camera"), (AudioStreamTrack(), "microphone")]
    )
    return client


async def test_three_participants_see_and_hear_each_other(hub):
    clients = [await _join_publishing(hub, "joint-1", n) for n in ("A", "B", "C")]
    try:
        names = {c.peer_id: c.name for c in clients}
        for client in clients:
            await _wait_until(
                lambda c=client: len(c.received) == 4, 20, f"{client.name}'s 4 tracks"
            )
        for client in clients:
            videos = [r for r in client.received.values() if r.kind == "video"]
            audios = [r for r in client.received.values() if r.kind == "audio"]
            assert sorted(names[r.peer] for r in videos) == sorted(
                n for n in LEVELS if n != client.name
            )
            assert len(audios) == 2
            for received in videos:
                frames = await _frames(received.track, 5)
                assert frames[-1].pts > frames[0].pts
                expected = LEVELS[names[received.peer]]
                assert abs(mean_luma(frames[-1]) - expected) < 8
            for received in audios:
                frames = await _frames(received.track, 5)
                assert frames[-1].pts > frames[0].pts

        stats = _stats(hub)
        room = next(r for r in stats["rooms"] if r["id"] == "joint-1")
        assert len(room["peers"]) == 3
        assert len(room["tracks"]) == 6
        for track in room["tracks"]:
            assert track["in"]["packets"] > 0
            assert len(track["out"]) == 2
            assert all(out["packets"] > 0 for out in track["out"])
    finally:
        for client in clients:
            await client.close()


async def test_relay_decodes_and_encodes_no_frame(hub):
    before = _stats(hub)["transcoding"]
    a = await _join_publishing(hub, "count-1", "A")
    b = await _join_publishing(hub, "count-1", "B")
    try:
        await _wait_until(lambda: len(b.received) == 2, 20, "B's tracks")
        video = next(r for r in b.received.values() if r.kind == "video")
        await _frames(video.track, 30)
        after = _stats(hub)
        room = next(r for r in after["rooms"] if r["id"] == "count-1")
        forwarded = sum(out["packets"] for t in room["tracks"] for out in t["out"])
        assert forwarded > 30
        assert after["transcoding"] == before
        assert after["transcoding"]["frames_decoded"] == 0
        assert after["transcoding"]["frames_encoded"] == 0
    finally:
        await a.close()
        await b.close()


async def test_leaving_participant_is_dropped_everywhere(hub):
    a = await _join_publishing(hub, "leave-1", "A")
    b = await _join_publishing(hub, "leave-1", "B")
    c = await _join_publishing(hub, "leave-1", "C")
    try:
        await _wait_until(lambda: len(a.received) == 4, 20, "A's tracks")
        c_tracks = {t["id"] for t in a.tracks if t["peer"] == c.peer_id}
        assert len(c_tracks) == 2
        left = a.wait_for(lambda m: m["type"] == "peer-left", scaled(10))
        reoffer = b.wait_for(
            lambda m: (
                m["type"] == "offer"
                and not {e["track"] for e in m["tracks"]} & c_tracks
            ),
            scaled(10),
        )
        await c.send({"type": "leave"})
        message = await left
        assert message == {"type": "peer-left", "peer": c.peer_id, "reason": "left"}
        await reoffer
        await _wait_until(
            lambda: not {t["id"] for t in a.tracks} & c_tracks, 10, "C's tracks gone"
        )
        room = next(r for r in _stats(hub)["rooms"] if r["id"] == "leave-1")
        assert {p["id"] for p in room["peers"]} == {a.peer_id, b.peer_id}
        assert not {t["id"] for t in room["tracks"]} & c_tracks
        for track in room["tracks"]:
            assert {out["peer"] for out in track["out"]} <= {a.peer_id, b.peer_id}
    finally:
        for client in (a, b, c):
            await client.close()


async def test_vanished_participant_is_cleaned_up(hub):
    a = await _join_publishing(hub, "vanish-1", "A")
    b = await _join_publishing(hub, "vanish-1", "B")
    try:
        await _wait_until(lambda: len(a.received) == 2, 20, "A's tracks")
        left = a.wait_for(lambda m: m["type"] == "peer-left", scaled(10))
        # A closed tab: the TCP connection drops without a close frame.
        b.ws.transport.abort()
        message = await left
        assert message["peer"] == b.peer_id
        assert message["reason"] == "disconnected"
        await _wait_until(
            lambda: not a.tracks or all(t["peer"] == a.peer_id for t in a.tracks),
            10,
            "B's tracks gone",
        )
    finally:
        await a.close()
        await b.close()


async def test_silent_participant_times_out(tmp_path):
    with run_hub(tmp_path, idle_timeout=2) as hub:
        a = await _join_publishing(hub, "idle-1", "A")
        b = await _join_publishing(hub, "idle-1", "B")

        async def keep_alive() -> None:
            while True:
                await a.send({"type": "ping"})
                await asyncio.sleep(0.5)

        pinger = asyncio.ensure_future(keep_alive())
        try:
            # B sends nothing more, as a client behind a dead network would.
            message = await a.wait_for(lambda m: m["type"] == "peer-left", scaled(15))
            assert message == {
                "type": "peer-left",
                "peer": b.peer_id,
                "reason": "timeout",
            }
            room = next(r for r in _stats(hub)["rooms"] if r["id"] == "idle-1")
            assert [p["id"] for p in room["peers"]] == [a.peer_id]
            assert all(t["peer"] == a.peer_id for t in room["tracks"])
        finally:
            pinger.cancel()
            await a.close()
            await b.close()


async def test_keyframe_requests_are_throttled(hub):
    publisher = HubClient(hub.ws_url, "pli-1", "A")
    await publisher.join()
    await publisher.publish([(FlatVideoTrack(90), "camera")])
    sender = publisher.up_pc.getTransceivers()[0].sender
    requests = []
    original = sender._send_keyframe

    def counting_send_keyframe() -> None:
        requests.append(time.monotonic())
        original()

    sender._send_keyframe = counting_send_keyframe
    viewers = [HubClient(hub.ws_url, "pli-1", f"V{i}") for i in range(8)]
    try:
        started = time.monotonic()
        await asyncio.gather(*(v.join() for v in viewers))
        for viewer in viewers:
            await _wait_until(lambda v=viewer: len(v.received) == 1, 30, "video")
        for viewer in viewers:
            received = next(iter(viewer.received.values()))
            frame = await asyncio.wait_for(received.track.recv(), scaled(10))
            assert abs(mean_luma(frame) - 90) < 8
        elapsed = time.monotonic() - started
        # Every viewer asked for a keyframe on connecting; the hub passes on
        # at most one per 0.5 s (media.keyframe_request_interval).
        assert requests, "the publisher never got a keyframe request"
        assert len(requests) <= elapsed / 0.5 + 2
        gaps = [b - a for a, b in zip(requests, requests[1:], strict=False)]
        assert all(gap >= 0.45 for gap in gaps), gaps
        room = next(r for r in _stats(hub)["rooms"] if r["id"] == "pli-1")
        assert len(room["tracks"][0]["out"]) == 8
    finally:
        await publisher.close()
        for viewer in viewers:
            await viewer.close()


async def test_departed_participants_release_tasks_and_connections(tmp_path):
    with run_hub(tmp_path) as hub:
        baseline = _stats(hub)["process"]
        for round_index in range(3):
            clients = [
                await _join_publishing(hub, f"churn-{round_index}", name)
                for name in ("A", "B")
            ]
            receiver = clients[1]
            await _wait_until(lambda c=receiver: len(c.received) == 2, 20, "tracks")
            during = _stats(hub)["process"]
            assert during["peer_connections"] == 4
            for client in clients:
                await client.send({"type": "leave"})
                await client.close()

        def settled() -> bool:
            now = _stats(hub)["process"]
            return (
                now["peer_connections"] == 0
                and now["asyncio_tasks"] <= baseline["asyncio_tasks"] + 2
            )

        await _wait_until(settled, 20, "tasks and connections to be released")
        assert _stats(hub)["rooms"] == []
