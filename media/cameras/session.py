"""One connection to a camera stream, run in a thread of its own.

A `StreamSession` opens the stream with PyAV, demuxes packets, packetizes
H.264 (or transcodes what must be) and G.711, and hands the RTP packets to
its `CameraFeed` on the event loop thread. It never decodes a passed-through
stream.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av

from media.cameras.packetize import (
    AccessUnitFramer,
    BitstreamError,
    G711Packetizer,
    annexb,
    is_keyframe,
    media_seconds,
)
from media.cameras.providers import StreamSource
from media.cameras.transcode import TranscodeError, Transcoder

if TYPE_CHECKING:
    from media.cameras.ingest import CameraFeed

logger = logging.getLogger(__name__)

G711_CODECS = {"pcm_alaw": "PCMA", "pcm_mulaw": "PCMU"}
STATS_WINDOW = 2.0  # seconds of history behind fps and bitrate


class _StopSession(Exception):
    pass


class _SessionTimeout(Exception):
    pass


class StreamSession:
    """One connection to the camera: open, demux, packetize, in a thread."""

    def __init__(
        self, feed: CameraFeed, source: StreamSource, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.feed = feed
        self.source = source
        self.loop = loop
        self.camera_id = feed.camera_id
        self.settings = feed.settings
        self.stop = threading.Event()
        self.media_seen = False
        self.last_activity = time.monotonic()
        self.transcoder: Transcoder | None = None
        self.dropped = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._history: collections.deque[tuple[float, int]] = collections.deque()
        self.opening = True
        # Viewers cannot decode anything before the first keyframe.
        self._skip_to_keyframe = True
        self._dropping = False
        self.stop_reason: str | None = None
        self._max_pts: int | None = None
        self._first_media: tuple[float, float] | None = None

    # -- helpers used from the loop thread ------------------------------------

    def rates(self) -> tuple[float, int]:
        now = time.monotonic()
        with self._lock:
            while self._history and now - self._history[0][0] > STATS_WINDOW:
                self._history.popleft()
            count = len(self._history)
            size = sum(item[1] for item in self._history)
        if count < 2:
            return 0.0, 0
        return count / STATS_WINDOW, round(size * 8 / STATS_WINDOW)

    def release_pending(self) -> None:
        with self._lock:
            self._pending -= 1

    def timeout_message(self) -> str:
        limit = (
            self.settings.open_timeout if self.opening else self.settings.read_timeout
        )
        message = f"timed out after {limit:g} s waiting for media"
        if self.opening:
            message += " (while opening the stream)"
        return message

    # -- the thread -------------------------------------------------------------

    def request_stop(self, reason: str | None) -> None:
        """End the session; `reason` becomes its error (None: a deliberate stop)."""
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()

    def run(self, done: asyncio.Future[str | None]) -> None:
        error: str | None = None
        try:
            self._run()
        except _StopSession:
            error = self.stop_reason
        except (_SessionTimeout, av.error.ExitError, av.error.TimeoutError):
            error = self.stop_reason if self.stop.is_set() else self.timeout_message()
        except av.FFmpegError as exc:
            error = self._describe(exc)
        except (BitstreamError, TranscodeError, OSError, ValueError) as exc:
            error = self._redact(f"failed to read {self.source.redacted_url}: {exc}")
        except Exception:
            logger.exception("camera=%s reader crashed", self.camera_id)
            error = "internal error in the camera reader; see the hub log"
        self._call(self._finish, done, error)

    def _finish(self, done: asyncio.Future[str | None], error: str | None) -> None:
        if not done.done():
            done.set_result(error)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:
            pass  # the event loop is closed, so the result has no receiver

    def _describe(self, exc: av.FFmpegError) -> str:
        reason = exc.strerror or type(exc).__name__
        verb = "open" if self.opening else "read"
        return self._redact(f"failed to {verb} {self.source.redacted_url}: {reason}")

    def _redact(self, message: str) -> str:
        secret = self.feed.camera.secret()
        if secret and secret in message:
            message = message.replace(secret, "***")
        return message

    def _run(self) -> None:
        settings = self.settings
        logger.info(
            "camera=%s stream=%s opening %s",
            self.camera_id,
            self.feed.stream,
            self.source.redacted_url,
        )
        self.last_activity = time.monotonic()
        container = av.open(
            self.source.url,
            options=dict(self.source.options),
            timeout=(settings.open_timeout, settings.read_timeout),
        )
        try:
            self.opening = False
            self._demux(container)
        finally:
            container.close()

    def _demux(self, container: av.container.InputContainer) -> None:
        if not container.streams.video:
            raise ValueError("the stream has no video track")
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        self._configure(video, audio)
        wanted = [video] + ([audio] if audio is not None else [])
        last_video = time.monotonic()
        for packet in container.demux(wanted):
            if self.stop.is_set():
                raise _StopSession
            now = time.monotonic()
            self.last_activity = now
            if packet.size == 0:
                continue  # end-of-stream flush packet
            if packet.stream is video:
                last_video = now
                self._pace(packet)
                self._handle_video(packet)
            elif self.audio_packetizer is not None:
                self._handle_audio(packet)
            if now - last_video > self.settings.read_timeout:
                raise _SessionTimeout
        raise ValueError("the stream ended (end of file, or the camera closed it)")

    def _configure(self, video: av.VideoStream, audio: av.AudioStream | None) -> None:
        feed = self.feed
        context = video.codec_context
        codec_name = context.name
        reason = ""
        if codec_name == "hevc":
            reason = "H.265"
        elif codec_name != "h264":
            reason = codec_name
        elif context.has_b_frames:
            reason = "B-frames"
        notes = []
        extradata = context.extradata
        self.framer = AccessUnitFramer(None if reason else extradata)
        if reason:
            self._start_transcode(video, reason)

        # Audio: G.711 goes through as it is, anything else is dropped.
        self.audio_packetizer = None
        audio_name = ""
        if audio is not None:
            audio_context = audio.codec_context
            name = G711_CODECS.get(audio_context.name)
            if (
                name
                and audio_context.sample_rate == 8000
                and audio_context.channels == 1
            ):
                audio_name = name
                packetizer = feed.audio_packetizer
                if packetizer is None or packetizer.name != name:
                    feed.audio_packetizer = G711Packetizer(name)
                self.audio_packetizer = feed.audio_packetizer
                self.audio_packetizer.restart()
                self.audio_time_base = audio.time_base
            else:
                notes.append(
                    f"audio {audio_context.name} {audio_context.sample_rate} Hz "
                    "dropped: only G.711 (PCMA/PCMU, 8 kHz mono) is forwarded"
                )

        feed.video_timeline.rebase()
        feed.audio_timeline.rebase()
        self._call(
            feed._on_open,
            self,
            {
                "codec": codec_name,
                "width": context.width or 0,
                "height": context.height or 0,
                "transcoded": bool(reason),
                "transcode_reason": reason,
                "audio": audio_name,
                "notes": notes,
            },
        )

    def _start_transcode(self, video: av.VideoStream, reason: str) -> None:
        if not self.settings.transcode:
            raise ValueError(
                f"the stream needs transcoding ({reason}) but ingest.transcode is "
                "false; set it to true or configure the camera for H.264 without "
                "B-frames"
            )
        context = video.codec_context
        rate = video.average_rate or video.guessed_rate
        self.transcoder = Transcoder(
            self.camera_id,
            context.name,
            context.extradata,
            self.settings.transcode_bitrate,
            float(rate) if rate else None,
        )
        self.framer = AccessUnitFramer(None)
        self._skip_to_keyframe = True

    def _pace(self, packet: av.Packet) -> None:
        """Hold back a source that delivers faster than real time (a file)."""
        seconds = media_seconds(
            packet.dts if packet.dts is not None else packet.pts, packet.time_base
        )
        if seconds is None:
            return
        now = time.monotonic()
        if self._first_media is None:
            self._first_media = (now, seconds)
            return
        start_wall, start_media = self._first_media
        ahead = (seconds - start_media) - (now - start_wall)
        if ahead > 5:
            self._first_media = (now, seconds)  # timestamps jumped: start again
        while ahead > 0.05:
            # Short steps keep last_activity fresh for the watchdog.
            step = min(ahead, 0.5)
            if self.stop.wait(step):
                raise _StopSession
            self.last_activity = time.monotonic()
            ahead -= step

    def _handle_video(self, packet: av.Packet) -> None:
        data = bytes(packet)
        with self._lock:
            self._history.append((time.monotonic(), len(data)))
        if self.transcoder is None and packet.pts is not None:
            if self._max_pts is not None and packet.pts < self._max_pts:
                self._switch_to_transcode(packet)
            else:
                self._max_pts = packet.pts
        if self.transcoder is not None:
            self._transcode(packet, data)
            return
        nals = self.framer.frame(data)
        if not nals:
            return
        keyframe = is_keyframe(nals)
        if self._skip_to_keyframe and not keyframe:
            return
        self._skip_to_keyframe = False
        seconds = media_seconds(packet.pts, packet.time_base)
        self._emit_video(nals, keyframe, seconds)

    def _switch_to_transcode(self, packet: av.Packet) -> None:
        reason = "B-frames (out-of-order timestamps)"
        logger.warning(
            "camera=%s stream=%s %s seen; switching to transcoding",
            self.camera_id,
            self.feed.stream,
            reason,
        )
        self._start_transcode(packet.stream, reason)
        self._call(self.feed._on_note, self, f"transcoding: {reason}", reason)

    def _transcode(self, packet: av.Packet, data: bytes) -> None:
        source_keyframe = packet.is_keyframe
        if self._skip_to_keyframe and not source_keyframe:
            return
        self._skip_to_keyframe = False
        transcoder = self.transcoder
        if transcoder is None:
            return
        outputs = transcoder.transcode(data, packet.pts, packet.dts, packet.time_base)
        for output, seconds, keyframe in outputs:
            nals = self.framer.frame(output)
            if nals:
                self._emit_video(nals, keyframe or is_keyframe(nals), seconds)

    def _emit_video(
        self, nals: list[bytes], keyframe: bool, seconds: float | None
    ) -> None:
        with self._lock:
            backlog = self._pending
        if backlog >= self.settings.max_pending_frames:
            # The event loop is behind: drop until the next keyframe, so the
            # viewers never decode a picture that refers to a dropped one.
            self._dropping = True
            if self.transcoder is not None:
                self.transcoder.request_keyframe()
        if self._dropping:
            if not keyframe or backlog >= self.settings.max_pending_frames:
                self.dropped += 1
                return
            self._dropping = False
        unit = annexb(nals)
        timestamp = self.feed.video_timeline.timestamp(seconds)
        packets = self.feed.video_packetizer.packetize(nals, timestamp)
        profile = self.framer.profile_level_id
        self.media_seen = True
        with self._lock:
            self._pending += 1
        self._call(self.feed._on_video, self, packets, keyframe, unit, profile)

    def _handle_audio(self, packet: av.Packet) -> None:
        packetizer = self.audio_packetizer
        if packetizer is None:
            return
        seconds = media_seconds(packet.pts, packet.time_base)
        timestamp = self.feed.audio_timeline.timestamp(seconds)
        with self._lock:
            backlog = self._pending
        if backlog >= self.settings.max_pending_frames:
            packetizer.restart()  # the next packet starts a talkspurt
            return
        packets = packetizer.packetize(bytes(packet), timestamp)
        with self._lock:
            self._pending += 1
        self._call(self.feed._on_audio, self, packets)
