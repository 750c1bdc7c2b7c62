"""Camera ingest against GStreamer's RTSP server (a real server in a subprocess)
and a silent RTSP server. Decoding happens in the tests only, to prove the
packets form a valid stream."""

from __future__ import annotations

import asyncio
import io
import time

import av
import httpx
import pytest
from av.video.frame import PictureType
from starlette.applications import Starlette

from media.cameras.api import make_routes
from media.cameras.ingest import FeedOffline, IngestSettings
from media.cameras.manager import CameraManager
from media.cameras.registry import CameraRegistry
from media.uptrack import UpTrack
from tests.hubproc import scaled
from tests.rtsp_server import (
    CLIP,
    CLIP_HEIGHT,
    CLIP_PROFILE_LEVEL_ID,
    CLIP_WIDTH,
    GstRtspServer,
    SilentRtspServer,
    gstreamer_available,
)
from tests.test_camera_packetize import decode_units, depacketize

pytestmark = pytest.mark.rtsp

_missing = gstreamer_available()
needs_gstreamer = pytest.mark.skipif(_missing is not None, reason=_missing or "")

SMALL_VIDEO = "video/x-raw,width=320,height=240,framerate=15/1"
MOUNTS = {
    "/clip": f"clip:{CLIP}",
    "/bframes": (
        f"launch:( videotestsrc is-live=true pattern=ball ! {SMALL_VIDEO} "
        "! x264enc speed-preset=ultrafast bframes=2 key-int-max=30 "
        "! video/x-h264,profile=high ! rtph264pay name=pay0 pt=96 )"
    ),
    "/h265": (
        f"launch:( videotestsrc is-live=true pattern=ball ! {SMALL_VIDEO} "
        "! x265enc speed-preset=ultrafast tune=zerolatency key-int-max=30 "
        "! rtph265pay name=pay0 pt=96 )"
    ),
    "/pcma": (
        f"launch:( videotestsrc is-live=true ! {SMALL_VIDEO} "
        "! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 "
        "audiotestsrc is-live=true wave=sine freq=440 "
        "! audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8 )"
    ),
    "/opus": (
        f"launch:( videotestsrc is-live=true ! {SMALL_VIDEO} "
        "! x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 "
        "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 "
        "audiotestsrc is-live=true ! opusenc ! rtpopuspay name=pay1 pt=97 )"
    ),
}
PASSWORD = "Tianyan#2024"


def fast_settings(**changes) -> IngestSettings:
    values = {
        "open_timeout": 3.0,
        "read_timeout": 2.0,
        "linger": 30.0,
        "backoff_initial": 0.3,
        "backoff_max": 1.0,
    }
    values.update(changes)
    return IngestSettings(**values)


def camera(camera_id: str, url: str, **changes) -> dict:
    data = {
        "id": camera_id,
        "name": f"测试摄像机 {camera_id}",
        "network": "tianyan",
        "unit": "puer.simao",
        "main_url": url,
        "username": "admin",
        "password": PASSWORD,
    }
    data.update(changes)
    return data


class Collector:
    """A sink that keeps packets and wakes waiters when a count is reached."""

    def __init__(self) -> None:
        self.packets = []
        self._event = asyncio.Event()
        self._target = 0

    def __call__(self, packet) -> None:
        self.packets.append(packet)
        if len(self.packets) >= self._target:
            self._event.set()

    @property
    def frames(self) -> int:
        return sum(packet.marker for packet in self.packets)

    async def wait_frames(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + scaled(timeout)
        while self.frames < count:
            self._target = len(self.packets) + 1
            self._event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} frames, got {self.frames} in {timeout} s"
                )
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                continue


async def wait_for_state(feed, predicate, timeout: float = 20.0):
    """Poll the feed's status (as the admin page does) until `predicate` holds."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        status = feed.status()
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"status never matched; last: {status}")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def rtsp():
    if _missing:
        pytest.skip(_missing)
    with GstRtspServer(MOUNTS) as server:
        yield server


@pytest.fixture
def opened(monkeypatch):
    """Record every container and codec context the ingest opens."""
    containers = []
    contexts = []
    real_open = av.open
    real_context = av.CodecContext

    def recording_open(*args, **kwargs):
        container = real_open(*args, **kwargs)
        containers.append(container)
        return container

    class RecordingCodecContext:
        @staticmethod
        def create(name, mode=None):
            contexts.append((name, mode))
            return real_context.create(name, mode)

    monkeypatch.setattr(av, "open", recording_open)
    monkeypatch.setattr(av, "CodecContext", RecordingCodecContext)
    return containers, contexts


@needs_gstreamer
async def test_clip_packets_decode_without_ingest_decoding(rtsp, opened):
    containers, contexts = opened
    registry = CameraRegistry.from_list([camera("c1", rtsp.url("/clip"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c1")
        codec = await feed.wait_ready(timeout=scaled(15))
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(40)

        # The ingest only demuxed: no decoder was created or opened.
        assert contexts == []
        assert len(containers) == 1
        assert containers[0].streams.video[0].codec_context.is_open is False

        status = feed.status()
        assert status.state == "online"
        assert status.codec == "h264"
        assert (status.width, status.height) == (CLIP_WIDTH, CLIP_HEIGHT)
        assert status.transcoded is False
        assert status.fps > 0
        assert status.bitrate > 0
        assert status.keyframe_age is not None
        assert status.profile_level_id == CLIP_PROFILE_LEVEL_ID
        assert PASSWORD not in status.url
    finally:
        await manager.close()

    assert codec.mimeType == "video/H264"
    assert codec.clockRate == 90000
    assert codec.parameters["profile-level-id"] == CLIP_PROFILE_LEVEL_ID
    assert codec.parameters["packetization-mode"] == "1"
    packets = sink.packets
    assert {packet.ssrc for packet in packets} == {packets[0].ssrc}
    frames = decode_units(depacketize(packets))
    assert len(frames) >= 40
    assert {(frame.width, frame.height) for frame in frames} == {
        (CLIP_WIDTH, CLIP_HEIGHT)
    }


@needs_gstreamer
async def test_server_restart_reconnects_by_itself(tmp_path):
    server = GstRtspServer({"/clip": f"clip:{CLIP}"})
    server.start()
    registry = CameraRegistry.from_list([camera("c2", server.url("/clip"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c2")
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(10)

        server.kill()
        offline = await wait_for_state(feed, lambda s: s.state == "offline")
        assert offline.last_error
        assert PASSWORD not in offline.last_error
        before = len(sink.packets)

        restarted = GstRtspServer({"/clip": f"clip:{CLIP}"}, port=server.port)
        restarted.start()
        try:
            online = await wait_for_state(feed, lambda s: s.state == "online")
            await sink.wait_frames(sink.frames + 10)
        finally:
            restarted.stop()
        assert online.last_error == ""
        assert online.reconnects >= 1
    finally:
        await manager.close()
        server.stop()

    after = sink.packets[before:]
    # One continuous RTP stream for the relay across the reconnect, going on
    # with a keyframe (SPS and PPS in a STAP-A first).
    assert {packet.ssrc for packet in after} == {sink.packets[0].ssrc}
    assert after[0].payload[0] & 0x1F == 24
    for earlier, later in zip(sink.packets, sink.packets[1:], strict=False):
        assert later.sequence_number == (earlier.sequence_number + 1) & 0xFFFF
    frames = decode_units(depacketize(after))
    assert frames
    assert {(frame.width, frame.height) for frame in frames} == {
        (CLIP_WIDTH, CLIP_HEIGHT)
    }


@needs_gstreamer
async def test_udp_transport_delivers_frames(rtsp):
    registry = CameraRegistry.from_list(
        [camera("c14", rtsp.url("/clip"), transport="udp")]
    )
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c14")
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(20)
    finally:
        await manager.close()
    frames = decode_units(depacketize(sink.packets))
    assert len(frames) >= 20
    assert {(frame.width, frame.height) for frame in frames} == {
        (CLIP_WIDTH, CLIP_HEIGHT)
    }


async def test_silent_server_times_out_not_hangs():
    server = SilentRtspServer()
    await server.start()
    registry = CameraRegistry.from_list([camera("c3", server.url())])
    manager = CameraManager(registry, fast_settings(open_timeout=2, read_timeout=2))
    try:
        feed = manager.feed("c3")
        with pytest.raises(FeedOffline, match="timed out after 2 s waiting for media"):
            await asyncio.wait_for(feed.wait_ready(timeout=30), scaled(15))
        status = feed.status()
        assert server.plays >= 1  # the camera accepted the session
        assert status.state == "offline"
        assert status.last_error.startswith("timed out after 2 s waiting for media")
    finally:
        await manager.close()
        await server.stop()


async def test_refused_connection_reported_offline():
    server = SilentRtspServer()  # only to reserve a port that nothing serves
    registry = CameraRegistry.from_list([camera("c4", server.url())])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c4")
        with pytest.raises(FeedOffline, match="Connection refused"):
            await feed.wait_ready()
        status = await wait_for_state(feed, lambda s: s.reconnects >= 2)
        assert status.state == "offline"
        assert "Connection refused" in status.last_error
        assert PASSWORD not in status.last_error
    finally:
        await manager.close()


@needs_gstreamer
async def test_snapshot_api_returns_jpeg(rtsp):
    registry = CameraRegistry.from_list([camera("c5", rtsp.url("/clip"))])
    manager = CameraManager(registry, fast_settings())
    app = Starlette(routes=make_routes(registry, manager))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://h"
        ) as client:
            response = await client.get("/api/cameras/c5/snapshot.jpg", timeout=60)
            listing = await client.get("/api/cameras")
    finally:
        await manager.close()
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    with av.open(io.BytesIO(response.content)) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (CLIP_WIDTH, CLIP_HEIGHT)
    status = listing.json()["cameras"][0]["status"]["main"]
    assert status["state"] == "online"
    assert status["width"] == CLIP_WIDTH


async def test_snapshot_of_offline_camera_is_503():
    server = SilentRtspServer()
    registry = CameraRegistry.from_list([camera("c6", server.url())])
    manager = CameraManager(registry, fast_settings())
    app = Starlette(routes=make_routes(registry, manager))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://h"
        ) as client:
            response = await client.get("/api/cameras/c6/snapshot.jpg", timeout=60)
    finally:
        await manager.close()
    assert response.status_code == 503
    assert response.json()["error"] == "camera-offline"
    assert "Connection refused" in response.json()["message"]


@needs_gstreamer
async def test_b_frames_transcoded_once(rtsp, opened):
    _, contexts = opened
    registry = CameraRegistry.from_list([camera("c7", rtsp.url("/bframes"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c7")
        codec = await feed.wait_ready(timeout=scaled(20))
        first, second = Collector(), Collector()
        feed.add_sink(first)
        feed.add_sink(second)
        await first.wait_frames(30)
        status = feed.status()
    finally:
        await manager.close()
    assert status.transcoded is True
    assert status.transcode_reason == "B-frames"
    assert codec.parameters["profile-level-id"].startswith("42")
    # One decoder and one encoder for the camera, whatever the viewer count.
    assert sorted(contexts) == [("h264", "r"), ("libx264", "w")]
    frames = decode_units(depacketize(first.packets))
    assert {(frame.width, frame.height) for frame in frames} == {(320, 240)}
    assert PictureType.B not in {frame.pict_type for frame in frames}
    assert [p.sequence_number for p in second.packets] == [
        p.sequence_number for p in first.packets[-len(second.packets) :]
    ]


@needs_gstreamer
async def test_h265_transcoded_to_h264(rtsp):
    registry = CameraRegistry.from_list([camera("c8", rtsp.url("/h265"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c8")
        codec = await feed.wait_ready(timeout=scaled(20))
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(20)
        status = feed.status()
    finally:
        await manager.close()
    assert codec.mimeType == "video/H264"
    assert status.codec == "hevc"
    assert status.transcoded is True
    assert status.transcode_reason == "H.265"
    frames = decode_units(depacketize(sink.packets))
    assert {(frame.width, frame.height) for frame in frames} == {(320, 240)}


@needs_gstreamer
async def test_pcma_audio_passed_through(rtsp):
    registry = CameraRegistry.from_list([camera("c9", rtsp.url("/pcma"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c9")
        await feed.wait_ready(timeout=scaled(20))
        audio = Collector()
        feed.add_sink(audio, kind="audio")
        deadline = time.monotonic() + scaled(20)
        while len(audio.packets) < 50 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        status = feed.status()
    finally:
        await manager.close()
    assert feed.audio_codec is not None
    assert feed.audio_codec.mimeType == "audio/PCMA"
    assert feed.audio_codec.clockRate == 8000
    assert status.audio == "PCMA"
    packets = audio.packets
    assert len(packets) >= 50
    assert {packet.payload_type for packet in packets} == {8}
    assert {len(packet.payload) for packet in packets} <= set(range(1, 161))
    steps = {
        (later.timestamp - earlier.timestamp) & 0xFFFFFFFF
        for earlier, later in zip(packets, packets[1:], strict=False)
    }
    assert 160 in steps
    # A sine tone, not A-law silence (0xd5).
    assert len(set(b"".join(packet.payload for packet in packets))) > 20


@needs_gstreamer
async def test_other_audio_dropped_with_note(rtsp):
    registry = CameraRegistry.from_list([camera("c10", rtsp.url("/opus"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c10")
        await feed.wait_ready(timeout=scaled(20))
        status = feed.status()
    finally:
        await manager.close()
    assert feed.audio_codec is None
    assert status.audio == ""
    assert any("audio opus" in note and "dropped" in note for note in status.notes)


async def test_mp4_file_source_inserts_parameter_sets():
    registry = CameraRegistry.from_list([camera("c11", str(CLIP))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c11")
        codec = await feed.wait_ready(timeout=scaled(15))
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(15)
    finally:
        await manager.close()
    assert codec.parameters["profile-level-id"] == CLIP_PROFILE_LEVEL_ID
    # The MP4 keeps SPS/PPS in extradata; the first packet carries them in-band.
    assert sink.packets[0].payload[0] & 0x1F == 24
    frames = decode_units(depacketize(sink.packets))
    assert len(frames) >= 15
    assert {(frame.width, frame.height) for frame in frames} == {
        (CLIP_WIDTH, CLIP_HEIGHT)
    }


@needs_gstreamer
async def test_url_change_reconnects_feed(rtsp):
    registry = CameraRegistry.from_list([camera("c15", rtsp.url("/clip"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c15")
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(5)
        registry.update("c15", {"main_url": rtsp.url("/pcma")})
        status = await wait_for_state(
            feed, lambda s: s.state == "online" and s.width == 320
        )
        await sink.wait_frames(sink.frames + 5)
    finally:
        await manager.close()
    assert status.url == rtsp.url("/pcma")
    assert status.height == 240
    assert status.reconnects == 0  # a settings change is not a failure


@needs_gstreamer
async def test_feed_stops_after_linger(rtsp):
    registry = CameraRegistry.from_list([camera("c12", rtsp.url("/clip"))])
    manager = CameraManager(registry, fast_settings(linger=0.5))
    try:
        feed = manager.feed("c12")
        sink = Collector()
        feed.add_sink(sink)
        await sink.wait_frames(5)
        feed.remove_sink(sink)
        status = await wait_for_state(feed, lambda s: s.state == "idle")
        assert feed.running is False
        assert status.sinks == 0
    finally:
        await manager.close()


@needs_gstreamer
async def test_feed_drives_relay_up_track(rtsp):
    registry = CameraRegistry.from_list([camera("c13", rtsp.url("/clip"))])
    manager = CameraManager(registry, fast_settings())
    try:
        feed = manager.feed("c13")
        codec = await feed.wait_ready(timeout=scaled(15))
        track = UpTrack(
            "camera:c13:main",
            "video",
            codec,
            source="camera",
            label=registry.get("c13").name,
            request_keyframe=feed.request_keyframe,
            cache_gop=True,
        )
        feed.add_sink(track.forward)
        sink = Collector()
        feed.add_sink(sink, replay_gop=False)
        await sink.wait_frames(10)
    finally:
        await manager.close()
    # The replayed GOP starts with the keyframe, so the relay saw one at once.
    assert track.keyframes >= 1
    assert track.packets > len(sink.packets)
