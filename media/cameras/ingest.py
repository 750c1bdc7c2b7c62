"""Ingest: one reader per camera stream, from PyAV packets to RTP packets.

A `CameraFeed` reads one stream ("main" or "sub") of one camera. It starts when
the first sink subscribes (or a caller waits for it to be ready) and stops
`linger` seconds after the last sink leaves. The blocking demux runs in a
thread of its own and reads packets only: an H.264 stream without B-frames is
packetized as it arrives and never decoded. Anything else (B-frames, H.265,
other codecs) goes through a `Transcoder`, once per feed.

Packets reach the sinks on the event loop thread, in order. A sink must not
change a packet it receives, because all sinks share it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

from media.cameras.packetize import (
    AUDIO_CLOCK_RATE,
    VIDEO_CLOCK_RATE,
    G711Packetizer,
    H264Packetizer,
    RtpTimeline,
    g711_codec,
    h264_codec,
)
from media.cameras.providers import ProviderError, StreamProvider
from media.cameras.registry import Camera, CameraError
from media.cameras.session import StreamSession

logger = logging.getLogger(__name__)

Sink = Callable[[RtpPacket], None]


class FeedOffline(CameraError):
    """The camera stream is not delivering media; the message contains the reason."""

    code = "camera-offline"


@dataclass
class IngestSettings:
    """Timeouts and limits of camera ingest, from the [ingest] table."""

    open_timeout: float = 10.0
    read_timeout: float = 5.0
    linger: float = 15.0
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    transcode: bool = True
    transcode_bitrate: int = 1_500_000
    max_gop_bytes: int = 8_000_000
    max_pending_frames: int = 50
    snapshot_cache: float = 2.0

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> IngestSettings:
        known = {spec.name: spec for spec in fields(cls)}
        unknown = sorted(set(table) - set(known))
        if unknown:
            raise CameraError(
                f"unknown ingest setting(s) {unknown}; expected: {', '.join(known)}"
            )
        values: dict[str, Any] = {}
        for key, value in table.items():
            default = getattr(cls(), key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise CameraError(
                        f"ingest.{key} must be true or false, got {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CameraError(f"ingest.{key} must be a number, got {value!r}")
            elif value <= 0:
                raise CameraError(f"ingest.{key} must be positive, got {value!r}")
            values[key] = type(default)(value)
        settings = cls(**values)
        if settings.backoff_max < settings.backoff_initial:
            raise CameraError(
                f"ingest.backoff_max ({settings.backoff_max}) must be at least "
                f"ingest.backoff_initial ({settings.backoff_initial})"
            )
        return settings


@dataclass
class StreamStatus:
    """Live status of one camera stream, as the admin API shows it."""

    camera_id: str
    stream: str
    state: str = "idle"  # idle, starting, online or offline
    last_error: str = ""
    url: str = ""
    codec: str = ""  # codec the camera sends, e.g. "h264" or "hevc"
    profile_level_id: str = ""  # of the H.264 the sinks receive
    width: int = 0
    height: int = 0
    fps: float = 0.0
    bitrate: int = 0  # bits per second the camera sends
    keyframe_age: float | None = None  # seconds since the last keyframe
    reconnects: int = 0
    transcoded: bool = False
    transcode_reason: str = ""
    audio: str = ""  # "PCMA" or "PCMU" when forwarded
    notes: list[str] = field(default_factory=list)
    dropped_frames: int = 0
    sinks: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fps"] = round(self.fps, 1)
        if self.keyframe_age is not None:
            data["keyframe_age"] = round(self.keyframe_age, 1)
        return data


@dataclass
class GopSnapshot:
    """Coded pictures from the latest keyframe on, for decoding a snapshot."""

    codec_name: str
    extradata: bytes | None
    units: list[bytes]


class CameraFeed:
    """One stream of one camera, turned into RTP packets for sinks.

    `codec` is the H.264 codec of the video packets (with the stream's real
    profile-level-id) and `audio_codec` is PCMA or PCMU when the camera sends
    G.711; both are None until `wait_ready()` returns.
    """

    def __init__(
        self,
        camera: Camera,
        stream: str,
        provider: StreamProvider,
        settings: IngestSettings,
    ) -> None:
        self.camera = camera
        self.camera_id = camera.id
        self.stream = stream
        self.provider = provider
        self.settings = settings
        self.codec: RTCRtpCodecParameters | None = None
        self.audio_codec: RTCRtpCodecParameters | None = None
        self.video_packetizer = H264Packetizer()
        self.video_timeline = RtpTimeline(VIDEO_CLOCK_RATE)
        self.audio_packetizer: G711Packetizer | None = None
        self.audio_timeline = RtpTimeline(AUDIO_CLOCK_RATE)

        self._video_sinks: list[Sink] = []
        self._audio_sinks: list[Sink] = []
        self._status = StreamStatus(camera_id=camera.id, stream=stream)
        self._task: asyncio.Task[None] | None = None
        self._session: StreamSession | None = None
        self._stop_requested = False
        self._wakeup = asyncio.Event()
        self._linger: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[RTCRtpCodecParameters]] = []
        self._gop_packets: list[RtpPacket] | None = None
        self._gop_units: list[bytes] | None = None
        self._gop_bytes = 0
        self._last_keyframe: float | None = None
        self._last_logged_error = ""
        self._error_repeats = 0
        self._keyframe_requests = 0

    # -- sinks and lifecycle --------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def add_sink(
        self, sink: Sink, kind: str = "video", replay_gop: bool = True
    ) -> None:
        """Subscribe `sink` to the video or audio packets; starts the reader.

        With `replay_gop`, a video sink first receives the cached packets from
        the latest keyframe on, so its decoder can start at once.
        """
        sinks = self._sinks(kind)
        if sink in sinks:
            return
        sinks.append(sink)
        self._status.sinks = len(self._video_sinks) + len(self._audio_sinks)
        self._cancel_linger()
        self._ensure_running()
        if kind == "video" and replay_gop and self._gop_packets:
            for packet in list(self._gop_packets):
                self._call_sink(sink, packet)

    def remove_sink(self, sink: Sink) -> None:
        for sinks in (self._video_sinks, self._audio_sinks):
            if sink in sinks:
                sinks.remove(sink)
        self._status.sinks = len(self._video_sinks) + len(self._audio_sinks)
        if not self._video_sinks and not self._audio_sinks:
            self._schedule_linger()

    def _sinks(self, kind: str) -> list[Sink]:
        if kind == "video":
            return self._video_sinks
        if kind == "audio":
            return self._audio_sinks
        raise ValueError(f"sink kind must be 'video' or 'audio', got {kind!r}")

    async def wait_ready(self, timeout: float | None = None) -> RTCRtpCodecParameters:
        """Start the reader if needed and return `codec` once media flows.

        Raises FeedOffline with the camera's error as soon as an attempt fails,
        or when `timeout` (default: open plus read timeout) passes. Without a
        sink, the reader stops `linger` seconds later.
        """
        if timeout is None:
            timeout = self.settings.open_timeout + self.settings.read_timeout + 1
        self._ensure_running()
        if self._status.state == "online" and self.codec is not None:
            if not self._video_sinks and not self._audio_sinks:
                self._schedule_linger()
            return self.codec
        if self._status.state == "offline":
            raise FeedOffline(
                f"camera {self.camera_id!r} {self.stream} stream is offline: "
                f"{self._status.last_error}"
            )
        waiter: asyncio.Future[RTCRtpCodecParameters] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            detail = self._status.last_error or f"state {self._status.state}"
            raise FeedOffline(
                f"camera {self.camera_id!r} {self.stream} stream is not online after "
                f"{timeout:g} s ({detail})"
            ) from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if not self._video_sinks and not self._audio_sinks:
                self._schedule_linger()

    def request_keyframe(self) -> None:
        """Ask for a keyframe. Only a transcoded feed can make one on demand:
        RTSP has no standard request, so a passed-through camera sends its next
        keyframe on its own schedule."""
        self._keyframe_requests += 1
        session = self._session
        if session is not None and session.transcoder is not None:
            session.transcoder.request_keyframe()
        else:
            logger.debug(
                "camera=%s stream=%s keyframe request not forwarded (passthrough)",
                self.camera_id,
                self.stream,
            )

    def _ensure_running(self) -> None:
        self._stop_requested = False
        if self.running:
            return
        self._status.state = "starting"
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"camera-{self.camera_id}-{self.stream}"
        )

    def _schedule_linger(self) -> None:
        self._cancel_linger()
        if not self.running:
            return
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(self.settings.linger, self._linger_expired)

    def _cancel_linger(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None

    def _linger_expired(self) -> None:
        self._linger = None
        if self._video_sinks or self._audio_sinks or self._waiters:
            return
        logger.info(
            "camera=%s stream=%s stopping: no viewer for %g s",
            self.camera_id,
            self.stream,
            self.settings.linger,
        )
        self._request_stop()

    def _request_stop(self) -> None:
        self._stop_requested = True
        session = self._session
        if session is not None:
            session.request_stop(None)
        self._wakeup.set()

    async def close(self) -> None:
        """Stop the reader and wait for its thread to end."""
        self._cancel_linger()
        self._request_stop()
        task = self._task
        if task is None:
            return
        grace = self.settings.open_timeout + self.settings.read_timeout + 2
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            logger.warning(
                "camera=%s stream=%s reader did not stop within %g s; abandoning it",
                self.camera_id,
                self.stream,
                grace,
            )
            task.cancel()

    async def set_camera(self, camera: Camera) -> None:
        """Use changed camera settings; a running reader reconnects with them."""
        self.camera = camera
        if self.running:
            logger.info(
                "camera=%s stream=%s settings changed, reconnecting",
                self.camera_id,
                self.stream,
            )
            session = self._session
            if session is not None:
                session.request_stop(None)

    # -- status ---------------------------------------------------------------

    def status(self) -> StreamStatus:
        status = StreamStatus(**asdict(self._status))
        status.notes = list(self._status.notes)
        session = self._session
        if session is not None and status.state == "online":
            status.fps, status.bitrate = session.rates()
            status.dropped_frames += session.dropped
        if self._last_keyframe is not None and status.state != "idle":
            status.keyframe_age = time.monotonic() - self._last_keyframe
        if self.codec is not None:
            status.profile_level_id = self.codec.parameters.get("profile-level-id", "")
        return status

    def gop_snapshot(self) -> GopSnapshot | None:
        if not self._gop_units:
            return None
        return GopSnapshot("h264", None, list(self._gop_units))

    # -- supervisor -----------------------------------------------------------

    async def _supervise(self) -> None:
        settings = self.settings
        delay = settings.backoff_initial
        logger.info("camera=%s stream=%s starting", self.camera_id, self.stream)
        try:
            while not self._stop_requested:
                error: str | None
                session: StreamSession | None = None
                try:
                    source = await self.provider.resolve(self.camera, self.stream)
                except ProviderError as exc:
                    error = str(exc)
                else:
                    self._status.url = source.redacted_url
                    session = StreamSession(self, source, asyncio.get_running_loop())
                    self._session = session
                    error = await self._run_session(session)
                    self._session = None
                    self._status.dropped_frames += session.dropped
                    if session.media_seen:
                        delay = settings.backoff_initial
                if self._stop_requested:
                    break
                if error is None:
                    continue  # stopped for a settings change: reconnect now
                self._fail(error)
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, settings.backoff_max)
                self._status.reconnects += 1
        finally:
            self._session = None
            self._status.state = "idle"
            self._status.fps = 0.0
            self._status.bitrate = 0
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(
                        FeedOffline(f"camera {self.camera_id!r} feed was stopped")
                    )
            logger.info("camera=%s stream=%s stopped", self.camera_id, self.stream)

    async def _run_session(self, session: StreamSession) -> str | None:
        """Run one connection in its thread; return its error, None if stopped."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str | None] = loop.create_future()
        thread = threading.Thread(
            target=session.run,
            args=(done,),
            name=f"camera-{self.camera_id}-{self.stream}",
            daemon=True,
        )
        thread.start()
        # Watchdog: PyAV applies open_timeout to avformat_open_input and again
        # to avformat_find_stream_info, so opening alone may take twice as
        # long. The watchdog reports the camera offline once the configured
        # time has passed, and covers a thread stuck where PyAV's interrupt
        # callback is not checked.
        settings = self.settings
        try:
            while not done.done():
                await asyncio.wait({done}, timeout=0.25)
                if done.done() or session.stop.is_set():
                    continue
                idle = time.monotonic() - session.last_activity
                if session.opening:
                    limit = settings.open_timeout + 0.5
                else:
                    limit = settings.read_timeout + 1
                if idle > limit:
                    message = session.timeout_message()
                    session.request_stop(message)
                    self._fail(message)
        except asyncio.CancelledError:
            session.request_stop(None)
            raise
        return done.result()

    def _fail(self, error: str) -> None:
        status = self._status
        status.state = "offline"
        status.last_error = error
        if error != self._last_logged_error:
            logger.warning(
                "camera=%s stream=%s offline: %s", self.camera_id, self.stream, error
            )
            self._last_logged_error = error
            self._error_repeats = 0
        else:
            self._error_repeats += 1
            logger.debug(
                "camera=%s stream=%s still offline (%d repeats): %s",
                self.camera_id,
                self.stream,
                self._error_repeats,
                error,
            )
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(
                    FeedOffline(
                        f"camera {self.camera_id!r} {self.stream} stream is offline: "
                        f"{error}"
                    )
                )

    # -- called on the loop thread by the session thread ----------------------

    def _on_open(self, session: StreamSession, info: dict[str, Any]) -> None:
        if session is not self._session:
            return
        status = self._status
        status.codec = info["codec"]
        status.width = info["width"]
        status.height = info["height"]
        status.transcoded = info["transcoded"]
        status.transcode_reason = info["transcode_reason"]
        status.audio = info["audio"]
        status.notes = list(info["notes"])
        if info["audio"]:
            self.audio_codec = g711_codec(info["audio"])
        else:
            self.audio_codec = None
        self._gop_packets = None
        self._gop_units = None

    def _on_video(
        self,
        session: StreamSession,
        packets: list[RtpPacket],
        keyframe: bool,
        unit: bytes,
        profile: str | None,
    ) -> None:
        session.release_pending()
        if session is not self._session:
            return
        if profile is not None:
            self._set_profile(profile)
        if self.codec is None:
            return  # no SPS seen yet: nothing a viewer could decode
        if self._status.state != "online":
            self._go_online()
        now = time.monotonic()
        size = sum(len(packet.payload) for packet in packets)
        if keyframe:
            self._last_keyframe = now
            self._gop_packets = list(packets)
            self._gop_units = [unit]
            self._gop_bytes = size + len(unit)
        elif self._gop_packets is not None and self._gop_units is not None:
            self._gop_bytes += size + len(unit)
            if self._gop_bytes > self.settings.max_gop_bytes:
                # NOTE: a GOP past the cap is not cached: late joiners wait for
                # the next keyframe and snapshots for the next GOP.
                self._gop_packets = None
                self._gop_units = None
            else:
                self._gop_packets.extend(packets)
                self._gop_units.append(unit)
        for sink in list(self._video_sinks):
            for packet in packets:
                self._call_sink(sink, packet)

    def _on_audio(self, session: StreamSession, packets: list[RtpPacket]) -> None:
        session.release_pending()
        if session is not self._session or self._status.state != "online":
            return
        for sink in list(self._audio_sinks):
            for packet in packets:
                self._call_sink(sink, packet)

    def _on_note(
        self, session: StreamSession, note: str, transcode_reason: str
    ) -> None:
        if session is not self._session:
            return
        if note not in self._status.notes:
            self._status.notes.append(note)
        if transcode_reason:
            self._status.transcoded = True
            self._status.transcode_reason = transcode_reason

    def _set_profile(self, profile: str) -> None:
        current = self.codec.parameters.get("profile-level-id") if self.codec else None
        if current == profile:
            return
        if current is not None:
            # NOTE: sinks created with the old codec keep its profile-level-id;
            # browsers decode by the in-band SPS, so playback goes on.
            logger.warning(
                "camera=%s stream=%s H.264 profile-level-id changed from %s to %s",
                self.camera_id,
                self.stream,
                current,
                profile,
            )
        self.codec = h264_codec(profile)

    def _go_online(self) -> None:
        status = self._status
        status.state = "online"
        status.last_error = ""
        self._last_logged_error = ""
        logger.info(
            "camera=%s stream=%s online: %s %dx%d%s%s",
            self.camera_id,
            self.stream,
            status.codec,
            status.width,
            status.height,
            f", transcoded ({status.transcode_reason})" if status.transcoded else "",
            f", audio {status.audio}" if status.audio else "",
        )
        codec = self.codec
        for waiter in self._waiters:
            if not waiter.done() and codec is not None:
                waiter.set_result(codec)

    def _call_sink(self, sink: Sink, packet: RtpPacket) -> None:
        try:
            sink(packet)
        except Exception:
            logger.exception(
                "camera=%s stream=%s sink %r failed; removing it",
                self.camera_id,
                self.stream,
                sink,
            )
            self.remove_sink(sink)
