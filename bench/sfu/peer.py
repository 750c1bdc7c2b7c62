"""aiortc pieces shared by the benchmark's load generators and baseline relay.

- `use_loopback_only` makes aioice gather host candidates on 127.0.0.1 only
  (aioice 0.13 leaves 127.0.0.1 out of its host candidates).
- `ClipTrack` sends the pre-encoded clip at 30 fps without encoding.
- `ReceiveCounter` replaces a receiver's RTP handler, so a subscriber counts
  packets instead of decoding every frame, and reassembles the VP8 frames of
  sampled subscribers for the integrity check.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from .source import FPS, Clip, frame_hash

logger = logging.getLogger(__name__)

VIDEO_CLOCK_RATE = 90_000


def use_loopback_only() -> None:
    """Make aioice gather its host candidates on 127.0.0.1 and nothing else."""

    def loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return ["127.0.0.1"]

    aioice.ice.get_host_addresses = loopback_addresses


def new_peer_connection() -> RTCPeerConnection:
    # An explicit empty list: without it aiortc adds a public STUN server.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


def prefer_vp8(transceiver: RTCRtpTransceiver) -> None:
    codecs = [
        codec
        for codec in RTCRtpSender.getCapabilities("video").codecs
        if codec.mimeType.lower() in ("video/vp8", "video/rtx")
    ]
    transceiver.setCodecPreferences(codecs)


async def wait_connected(pc: RTCPeerConnection, timeout: float) -> None:
    """Wait until `pc` is connected; raise on failure or after `timeout` s."""
    done = asyncio.Event()

    def check() -> None:
        if pc.connectionState in ("connected", "failed", "closed"):
            done.set()

    pc.on("connectionstatechange", check)
    check()
    await asyncio.wait_for(done.wait(), timeout)
    if pc.connectionState != "connected":
        raise ConnectionError(f"peer connection ended as {pc.connectionState}")


class ClipTrack(MediaStreamTrack):
    """Video track that loops the clip's encoded frames at 30 fps."""

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self._start: float | None = None
        self.frames_sent = 0

    @property
    def start_time(self) -> float | None:
        """Event-loop time (time.monotonic()) when frame 0 was due."""
        return self._start

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self.frames_sent / FPS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        frames = self._clip.frames
        packet = av.Packet(frames[self.frames_sent % len(frames)])
        # A timestamp that keeps growing across loops of the clip.
        packet.pts = self.frames_sent * (VIDEO_CLOCK_RATE // FPS)
        packet.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        self.frames_sent += 1
        return packet


@dataclass
class FrameAssembler:
    """VP8 frames of one subscriber, reassembled from RTP (RFC 7741)."""

    frames: list[bytes] = field(default_factory=list)
    incomplete: int = 0
    _timestamp: int | None = None
    _next_sequence: int = 0
    _parts: list[bytes] = field(default_factory=list)
    _intact: bool = False

    def add(self, packet: RtpPacket) -> None:
        try:
            descriptor, data = VpxPayloadDescriptor.parse(packet.payload)
        except ValueError:
            self._intact = False
            return
        if packet.timestamp != self._timestamp:
            if self._timestamp is not None and self._parts:
                self.incomplete += 1  # the previous frame never saw its marker
            self._timestamp = packet.timestamp
            self._parts = []
            self._intact = bool(descriptor.partition_start) and (
                descriptor.partition_id == 0
            )
        elif packet.sequence_number != self._next_sequence:
            self._intact = False
        self._parts.append(data)
        self._next_sequence = (packet.sequence_number + 1) & 0xFFFF
        if packet.marker:
            if self._intact:
                self.frames.append(b"".join(self._parts))
            else:
                self.incomplete += 1
            self._parts = []
            self._timestamp = None


class ReceiveCounter:
    """Counts one subscriber's video RTP packets in place of decoding them."""

    def __init__(self, receiver: RTCRtpReceiver, video_payload_type: int) -> None:
        self.receiver = receiver
        self.video_payload_type = video_payload_type
        self.packets = 0
        self.other_packets = 0
        self.bytes = 0
        self.frames = 0
        self.ssrc: int | None = None
        self.first_extended: int | None = None
        self.highest_extended = -1
        self.assembler: FrameAssembler | None = None
        receiver._handle_rtp_packet = self._handle_rtp_packet  # type: ignore[method-assign]

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if packet.payload_type != self.video_payload_type:
            self.other_packets += 1
            return
        self.packets += 1
        self.bytes += len(packet.payload)
        if packet.marker:
            self.frames += 1
        self.ssrc = packet.ssrc
        # Extend the 16-bit sequence number so losses can be counted.
        sequence = packet.sequence_number
        if self.first_extended is None:
            self.first_extended = sequence
            self.highest_extended = sequence
        else:
            base = self.highest_extended & ~0xFFFF
            candidate = base | sequence
            if candidate < self.highest_extended - 0x8000:
                candidate += 0x10000
            elif candidate > self.highest_extended + 0x8000:
                candidate -= 0x10000
            if candidate > self.highest_extended:
                self.highest_extended = candidate
        if self.assembler is not None:
            self.assembler.add(packet)

    def snapshot(self) -> dict[str, Any]:
        expected = 0
        if self.first_extended is not None:
            expected = self.highest_extended - self.first_extended + 1
        return {
            "packets": self.packets,
            "expected": expected,
            "frames": self.frames,
            "bytes": self.bytes,
            "other_packets": self.other_packets,
        }

    async def request_keyframe(self) -> None:
        if self.ssrc is not None:
            await self.receiver._send_rtcp_pli(self.ssrc)


def video_payload_type(transceiver: RTCRtpTransceiver) -> int:
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == "video/vp8":
            return codec.payloadType
    names = [codec.mimeType for codec in transceiver._codecs]
    raise ValueError(f"relay offered no VP8 codec, got {names}; the clip is VP8 only")


def check_frames(frames: list[bytes], clip: Clip) -> dict[str, int | None]:
    """Compare received frames with the clip and decode them from a keyframe.

    Returns `complete` (frames reassembled), `matching` (frames whose bytes
    equal a clip frame) and `out_of_order` (steps between two matching frames
    that skip or repeat a clip frame). `first_index` and `last_index` are the
    clip indexes of the first matching frame and of the last frame (None
    unless it matched). `after_keyframe` counts frames from the first
    keyframe on, and `decoded` and `decode_errors` are FFmpeg's VP8 decoder
    results for those.
    """
    matching = 0
    out_of_order = 0
    previous: int | None = None
    first_index: int | None = None
    for frame in frames:
        index = clip.index_by_hash.get(frame_hash(frame))
        if index is None:
            previous = None
            continue
        matching += 1
        if first_index is None:
            first_index = index
        if previous is not None and index != (previous + 1) % len(clip.frames):
            out_of_order += 1
        previous = index
    last_index = previous

    decoder = av.CodecContext.create("vp8", "r")
    decoded = 0
    errors = 0
    after_keyframe = 0
    for frame in frames:
        # Bit 0 of a VP8 frame tag is 0 for a keyframe (RFC 6386 section 9.1).
        if not after_keyframe and not (frame and frame[0] & 1 == 0):
            continue
        after_keyframe += 1
        try:
            decoded += len(decoder.decode(av.Packet(frame)))
        except av.error.FFmpegError:
            errors += 1
    try:
        decoded += len(decoder.decode(None))
    except av.error.FFmpegError:
        errors += 1
    return {
        "complete": len(frames),
        "matching": matching,
        "out_of_order": out_of_order,
        "first_index": first_index,
        "last_index": last_index,
        "after_keyframe": after_keyframe,
        "decoded": decoded,
        "decode_errors": errors,
    }
