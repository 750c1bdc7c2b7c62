"""Time a viewer's way to its first decoded picture, from its RTP packets.

`FirstFrameProbe` is plugged into `sfu.peer.ReceiveCounter` as its
`assembler`, so it sees every video packet while the counter goes on
counting. It reassembles frames (VP8 with `sfu.peer.FrameAssembler`, H.264
access units with `H264Assembler`), waits for a keyframe, decodes from there
with PyAV and stops decoding once the first picture comes out. Decoding runs
inline on the event loop, so a 720p keyframe holds up the other viewers of
the same process for its decoding time (about 10 to 30 ms here).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import av
from aiortc.codecs.h264 import H264PayloadDescriptor
from aiortc.rtp import RtpPacket
from sfu.peer import FrameAssembler

# H.264 NAL unit types (ITU-T H.264 table 7-1).
H264_IDR = 5
H264_SPS = 7
H264_PPS = 8
ANNEX_B_START = b"\x00\x00\x00\x01"
RTP_TIMESTAMP_SPAN = 1 << 32

CODECS = ("h264", "vp8")


@dataclass
class AccessUnit:
    """One H.264 access unit in Annex B form."""

    data: bytes
    nal_types: set[int]
    intact: bool


class H264Assembler:
    """H.264 access units of one stream, reassembled from RTP (RFC 6184).

    A unit ends at the packet with the marker bit. It is intact when its
    packets came without a sequence gap, its first packet begins a NAL unit,
    and it follows the previous unit's marker (or is the first one seen).
    Completed units collect in `units` until the caller takes them.
    """

    def __init__(self) -> None:
        self.units: list[AccessUnit] = []
        self.incomplete = 0
        self._timestamp: int | None = None
        self._parts: list[bytes] = []
        self._nal_types: set[int] = set()
        self._intact = False
        self._next_sequence: int | None = None
        self._after_marker = True

    def add(self, packet: RtpPacket) -> None:
        contiguous = (
            self._next_sequence is None or packet.sequence_number == self._next_sequence
        )
        self._next_sequence = (packet.sequence_number + 1) & 0xFFFF
        try:
            descriptor, data = H264PayloadDescriptor.parse(packet.payload)
        except ValueError:
            descriptor, data = None, b""
        if packet.timestamp != self._timestamp:
            if self._parts:
                self.incomplete += 1  # the previous unit never saw its marker
            self._timestamp = packet.timestamp
            self._parts = []
            self._nal_types = set()
            self._intact = (
                self._after_marker
                and contiguous
                and descriptor is not None
                and descriptor.first_fragment
            )
        elif not contiguous or descriptor is None:
            self._intact = False
        self._parts.append(data)
        # Each NAL unit the payload starts (single, STAP-A or first FU-A
        # fragment) is prefixed with a start code by the depacketizer.
        for segment in data.split(ANNEX_B_START)[1:]:
            if segment:
                self._nal_types.add(segment[0] & 0x1F)
        self._after_marker = bool(packet.marker)
        if packet.marker:
            if not self._intact:
                self.incomplete += 1
            self.units.append(
                AccessUnit(b"".join(self._parts), self._nal_types, self._intact)
            )
            self._parts = []
            self._timestamp = None


class FirstFrameProbe:
    """Records when a viewer got its first packet, its first keyframe and its
    first decoded picture (monotonic seconds, in `times`).

    `times` keys: `first_packet`; `keyframe_start` (first packet of the
    keyframe that decoding started on); `keyframe_complete` (its last
    packet); `decoded` (the decoder returned the picture). `done` is set
    after `decoded`. Decoding then stops, but the probe goes on noting the
    newest RTP timestamp, so `picture_age` can tell how far behind the live
    stream the first picture was.
    """

    def __init__(self, codec: str) -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
        self.codec = codec
        self.times: dict[str, float] = {}
        self.done = asyncio.Event()
        self.packets = 0
        self.frames_before_keyframe = 0
        self.broken_frames = 0
        self.decode_errors = 0
        self.width: int | None = None
        self.height: int | None = None
        self._decoder: av.CodecContext | None = av.CodecContext.create(codec, "r")
        self._vp8 = FrameAssembler() if codec == "vp8" else None
        self._h264 = H264Assembler() if codec == "h264" else None
        self._frame_timestamp: int | None = None
        self._frame_started_at = 0.0
        self._started = False
        self._keyframe_timestamp: int | None = None
        self._newest_timestamp: int | None = None

    def add(self, packet: RtpPacket) -> None:
        if self._decoder is None:
            self._note_timestamp(packet.timestamp)
            return
        now = time.monotonic()
        self.packets += 1
        self.times.setdefault("first_packet", now)
        self._note_timestamp(packet.timestamp)
        if packet.timestamp != self._frame_timestamp:
            self._frame_timestamp = packet.timestamp
            self._frame_started_at = now
        if self._vp8 is not None:
            broken = self._vp8.incomplete
            self._vp8.add(packet)
            if self._vp8.incomplete != broken:
                self._frame_broken()
            frames, self._vp8.frames = self._vp8.frames, []
            for frame in frames:
                # Bit 0 of a VP8 frame tag is 0 for a keyframe (RFC 6386 9.1).
                keyframe = bool(frame) and frame[0] & 1 == 0
                self._consume(frame, keyframe, packet.timestamp, now)
        elif self._h264 is not None:
            self._h264.add(packet)
            units, self._h264.units = self._h264.units, []
            for unit in units:
                if not unit.intact:
                    self._frame_broken()
                    continue
                keyframe = {H264_IDR, H264_SPS, H264_PPS} <= unit.nal_types
                self._consume(unit.data, keyframe, packet.timestamp, now)

    def _frame_broken(self) -> None:
        # A frame with a gap: start again at the next keyframe.
        self.broken_frames += 1
        self._started = False

    def _note_timestamp(self, timestamp: int) -> None:
        newest = self._newest_timestamp
        # RTP timestamps wrap at 2^32 (RFC 3550 section 5.1).
        if newest is None or 0 < (timestamp - newest) % RTP_TIMESTAMP_SPAN < (
            RTP_TIMESTAMP_SPAN // 2
        ):
            self._newest_timestamp = timestamp

    def _consume(self, data: bytes, keyframe: bool, timestamp: int, now: float) -> None:
        if self._decoder is None:
            return
        if not self._started:
            if not keyframe:
                self.frames_before_keyframe += 1
                return
            self._started = True
            self._keyframe_timestamp = timestamp
            self.times["keyframe_start"] = self._frame_started_at
            self.times["keyframe_complete"] = now
        try:
            pictures = self._decoder.decode(av.Packet(data))
        except av.error.FFmpegError:
            self.decode_errors += 1
            self._started = False
            return
        if pictures:
            self.times["decoded"] = time.monotonic()
            self.width, self.height = pictures[0].width, pictures[0].height
            self._decoder = None
            self.done.set()

    def picture_age(self, clock_rate: int) -> float | None:
        """Return the seconds of media from the first decoded picture to the
        newest packet received so far, or None before that picture.

        Called a moment after the picture, once a burst of cached packets
        has arrived, this is how old the picture was when it was decoded
        plus the length of that moment.
        """
        if self._keyframe_timestamp is None or self._newest_timestamp is None:
            return None
        span = (self._newest_timestamp - self._keyframe_timestamp) % RTP_TIMESTAMP_SPAN
        return span / clock_rate

    def result(self) -> dict:
        return {
            "times": dict(self.times),
            "packets_until_decoded": self.packets,
            "frames_before_keyframe": self.frames_before_keyframe,
            "broken_frames": self.broken_frames,
            "decode_errors": self.decode_errors,
            "width": self.width,
            "height": self.height,
        }
