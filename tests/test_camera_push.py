"""Push a surveillance camera into a running session: a real GStreamer RTSP
server serves a real H.264 clip, `hub serve` ingests it, and every aiortc
participant of the room receives it as one more track, never decoded by the
hub."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.hubclient import HubClient
from tests.hubproc import run_hub, scaled
from tests.media_tracks import FlatVideoTrack
from tests.rtsp_server import (
    CLIP,
    CLIP_HEIGHT,
    CLIP_WIDTH,
    GstRtspServer,
    gstreamer_available,
)

pytestmark = pytest.mark.skipif(
    gstreamer_available() is not None, reason=str(gstreamer_available())
)

CAMERA_ID = "53080200001320000009"
CAMERA_NAME = "思茅区茶苑路口"


def _cameras_file(folder, url: str) -> str:
    path = folder / "cameras.toml"
    path.write_text(
        f"""
[ingest]
open_timeout = 10
read_timeout = 5
linger = 1

[[camera]]
id = "{CAMERA_ID}"
name = "{CAMERA_NAME}"
network = "xueliang"
unit = "puer.simao.simao"
location = "茶苑路与振兴大道路口"
main_url = "{url}"
""",
        encoding="utf-8",
    )
    return f'\n[cameras]\nfile = "{path}"\n'


async def _wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_pushed_camera_reaches_every_participant(tmp_path):
    with GstRtspServer({"/cam": f"clip:{CLIP}"}) as rtsp:
        extra = _cameras_file(tmp_path, rtsp.url("/cam"))
        with run_hub(tmp_path, extra_config=extra) as hub:
            a = HubClient(hub.ws_url, "push-1", "普洱市指挥中心")
            b = HubClient(hub.ws_url, "push-1", "思茅区指挥室")
            await a.join()
            await b.join()
            await a.publish([(FlatVideoTrack(80), "camera")])
            try:
                reply = httpx.post(
                    f"{hub.url}/api/rooms/push-1/cameras",
                    json={"camera": CAMERA_ID, "stream": "main"},
                    timeout=scaled(30),
                )
                assert reply.status_code == 201, reply.text
                track_id = reply.json()["track"]
                assert reply.json()["label"] == CAMERA_NAME

                for client in (a, b):
                    await _wait_until(
                        lambda c=client: track_id in c.received, 20, "camera track"
                    )
                    info = next(t for t in client.tracks if t["id"] == track_id)
                    assert info["label"] == CAMERA_NAME
                    assert info["source"] == "camera-feed"
                    track = client.received[track_id].track
                    frames = [
                        await asyncio.wait_for(track.recv(), scaled(15))
                        for _ in range(5)
                    ]
                    assert (frames[-1].width, frames[-1].height) == (
                        CLIP_WIDTH,
                        CLIP_HEIGHT,
                    )
                    assert frames[-1].pts > frames[0].pts

                stats = httpx.get(f"{hub.url}/api/stats").json()
                assert stats["transcoding"]["frames_decoded"] == 0
                assert stats["transcoding"]["frames_encoded"] == 0
                room = next(r for r in stats["rooms"] if r["id"] == "push-1")
                camera = next(t for t in room["tracks"] if t["id"] == track_id)
                assert camera["codec"] == "video/H264"
                assert {o["peer"] for o in camera["out"]} == {a.peer_id, b.peer_id}

                listed = httpx.get(f"{hub.url}/api/rooms/push-1/cameras").json()
                assert [c["camera"] for c in listed["cameras"]] == [CAMERA_ID]

                removed = httpx.delete(
                    f"{hub.url}/api/rooms/push-1/cameras/{CAMERA_ID}?stream=main"
                )
                assert removed.status_code == 200
                await _wait_until(
                    lambda: all(t["id"] != track_id for t in b.tracks), 10, "removal"
                )
            finally:
                await a.close()
                await b.close()


async def test_push_errors_name_the_problem(tmp_path):
    extra = _cameras_file(tmp_path, "rtsp://127.0.0.1:9/nothing")
    with run_hub(tmp_path, extra_config=extra) as hub:
        client = HubClient(hub.ws_url, "push-2", "宁洱县指挥室")
        await client.join()
        try:
            unknown = httpx.post(
                f"{hub.url}/api/rooms/push-2/cameras", json={"camera": "nope"}
            )
            assert unknown.status_code == 404
            assert "nope" in unknown.json()["message"]

            no_room = httpx.post(
                f"{hub.url}/api/rooms/empty-room/cameras", json={"camera": CAMERA_ID}
            )
            assert no_room.status_code == 404
            assert "empty-room" in no_room.json()["message"]

            bad = httpx.post(f"{hub.url}/api/rooms/push-2/cameras", content=b"[1]")
            assert bad.status_code == 400

            offline = httpx.post(
                f"{hub.url}/api/rooms/push-2/cameras",
                json={"camera": CAMERA_ID},
                timeout=scaled(30),
            )
            assert offline.status_code == 503
            assert offline.json()["error"] == "camera-offline"
            assert client.tracks == []
        finally:
            await client.close()


async def test_late_viewer_starts_from_cached_pictures(tmp_path):
    with GstRtspServer({"/cam": f"clip:{CLIP}"}) as rtsp:
        extra = _cameras_file(tmp_path, rtsp.url("/cam"))
        with run_hub(tmp_path, extra_config=extra) as hub:
            first = HubClient(hub.ws_url, "late-1", "普洱市指挥中心")
            await first.join()
            reply = httpx.post(
                f"{hub.url}/api/rooms/late-1/cameras",
                json={"camera": CAMERA_ID},
                timeout=scaled(30),
            )
            assert reply.status_code == 201, reply.text
            track_id = reply.json()["track"]
            late = HubClient(hub.ws_url, "late-1", "景东县指挥室")
            try:
                await _wait_until(lambda: track_id in first.received, 20, "first")
                track = first.received[track_id].track
                await asyncio.wait_for(track.recv(), scaled(15))

                # The feed is running: a viewer who opens it now gets the
                # pictures since the last keyframe at once.
                await late.join()
                await _wait_until(lambda: track_id in late.received, 20, "late")
                frame = await asyncio.wait_for(
                    late.received[track_id].track.recv(), scaled(15)
                )
                assert (frame.width, frame.height) == (CLIP_WIDTH, CLIP_HEIGHT)
                stats = httpx.get(f"{hub.url}/api/stats").json()
                room = next(r for r in stats["rooms"] if r["id"] == "late-1")
                camera = next(t for t in room["tracks"] if t["id"] == track_id)
                out = {o["peer"]: o for o in camera["out"]}
                assert out[late.peer_id]["replayed"] > 0
            finally:
                await first.close()
                await late.close()
