"""Re-encode a camera stream that browsers cannot take as it is.

WebRTC receivers expect H.264 without B-frames: Chrome renders frames in
decode order, so a stream with B-frames plays back jerkily, and H.265 is not
negotiated by most browsers. Such a camera is decoded once and re-encoded with
libx264 as constrained baseline with no B-frames, whatever the number of
viewers. This runs in the camera's ingest thread and is CPU-bound: on the
2-core reference machine expect a few transcoded 720p cameras at most.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
from av.video.frame import PictureType

logger = logging.getLogger(__name__)

ENCODER_TIME_BASE = Fraction(1, 90000)


class TranscodeError(RuntimeError):
    pass


class Transcoder:
    """Decodes packets of `codec_name` and encodes H.264 constrained baseline.

    `transcode()` returns the encoded access units as (Annex B bytes, time in
    seconds, keyframe) tuples; the encoder repeats SPS/PPS before every IDR.
    """

    def __init__(
        self,
        camera_id: str,
        codec_name: str,
        extradata: bytes | None,
        bitrate: int,
        frame_rate: float | None,
        keyframe_interval: float = 2.0,
    ) -> None:
        self.camera_id = camera_id
        self.codec_name = codec_name
        self.bitrate = bitrate
        self.frame_rate = frame_rate if frame_rate and 1 <= frame_rate <= 120 else 25.0
        self.keyframe_interval = keyframe_interval
        try:
            self.decoder = av.CodecContext.create(codec_name, "r")
        except (av.FFmpegError, ValueError) as exc:
            raise TranscodeError(
                f"camera={camera_id} no decoder for codec {codec_name!r}: {exc}"
            ) from None
        if extradata:
            self.decoder.extradata = extradata
        self.encoder: av.VideoCodecContext | None = None
        self._force_keyframe = False
        self._last_pts: int | None = None

    def request_keyframe(self) -> None:
        """Make the next encoded frame an IDR; safe to call from any thread."""
        self._force_keyframe = True

    def transcode(
        self, data: bytes, pts: int | None, dts: int | None, time_base: Fraction | None
    ) -> list[tuple[bytes, float, bool]]:
        packet = av.Packet(data)
        if time_base is not None:
            packet.time_base = time_base
            packet.pts = pts
            packet.dts = dts
        try:
            frames = self.decoder.decode(packet)
        except av.InvalidDataError:
            # A damaged packet (for example after a loss over UDP): skip it, the
            # decoder recovers at the next keyframe.
            logger.debug("camera=%s dropped an undecodable packet", self.camera_id)
            return []
        output = []
        for frame in frames:
            output.extend(self._encode(frame))
        return output

    def _encode(self, frame: av.VideoFrame) -> list[tuple[bytes, float, bool]]:
        if self.encoder is None or (
            self.encoder.width != frame.width or self.encoder.height != frame.height
        ):
            self.encoder = self._open_encoder(frame.width, frame.height)
        seconds = frame.time
        if seconds is None:
            step = round(90000 / self.frame_rate)
            pts = (self._last_pts + step) if self._last_pts is not None else 0
        else:
            pts = round(seconds * 90000)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        picture = frame.reformat(format="yuv420p")
        picture.pts = pts
        picture.time_base = ENCODER_TIME_BASE
        if self._force_keyframe:
            picture.pict_type = PictureType.I
            self._force_keyframe = False
        else:
            picture.pict_type = PictureType.NONE
        output = []
        for packet in self.encoder.encode(picture):
            time = (
                float(packet.pts * ENCODER_TIME_BASE) if packet.pts is not None else 0
            )
            output.append((bytes(packet), time, packet.is_keyframe))
        return output

    def _open_encoder(self, width: int, height: int) -> av.VideoCodecContext:
        logger.info(
            "camera=%s transcoding %s to H.264 baseline %dx%d at %d kbit/s",
            self.camera_id,
            self.codec_name,
            width,
            height,
            self.bitrate // 1000,
        )
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width = width
        encoder.height = height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = ENCODER_TIME_BASE
        encoder.framerate = Fraction(self.frame_rate).limit_denominator(1001)
        encoder.bit_rate = self.bitrate
        encoder.gop_size = max(1, round(self.frame_rate * self.keyframe_interval))
        encoder.max_b_frames = 0
        encoder.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "profile": "baseline",
        }
        encoder.open()
        return encoder
