"""H.264 access units and G.711 audio into RTP packets, with no decoding.

H.264 payload format is RFC 6184 in packetization-mode 1: single NAL unit
packets, STAP-A to aggregate small NAL units (SPS, PPS, SEI) and FU-A to split
NAL units larger than the payload limit. The marker bit is set on the last
packet of each access unit (RFC 6184 section 5.1). G.711 is RFC 3551: 8 kHz,
one byte per sample, sent here in 20 ms packets.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass
from fractions import Fraction

from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters
from aiortc.rtp import RtpPacket

# Keeps an RTP packet within a 1280-byte IPv6 minimum MTU after SRTP, header
# extensions and TURN framing are added.
MAX_PAYLOAD = 1200
VIDEO_CLOCK_RATE = 90000
AUDIO_CLOCK_RATE = 8000
VIDEO_PAYLOAD_TYPE = 96
G711_SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9
NAL_FILLER = 12
NAL_STAP_A = 24
NAL_FU_A = 28

START_CODE = b"\x00\x00\x00\x01"


class BitstreamError(ValueError):
    """An H.264 access unit or its codec configuration cannot be parsed."""


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream at its 3- or 4-byte start codes.

    Trailing zero bytes of each NAL unit are dropped: they are either the
    first byte of a 4-byte start code or trailing_zero_8bits padding.
    """
    starts = []
    position = data.find(b"\x00\x00\x01")
    while position >= 0:
        starts.append(position)
        position = data.find(b"\x00\x00\x01", position + 3)
    if not starts:
        return [data] if data else []
    nals = []
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        nal = data[start + 3 : end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


def split_avcc(data: bytes, length_size: int) -> list[bytes]:
    """Split an AVCC (MP4-style, length-prefixed) access unit into NAL units."""
    if length_size not in (1, 2, 4):
        raise BitstreamError(f"NAL length size must be 1, 2 or 4, got {length_size}")
    nals = []
    position = 0
    while position + length_size <= len(data):
        size = int.from_bytes(data[position : position + length_size], "big")
        position += length_size
        if size == 0 or position + size > len(data):
            raise BitstreamError(
                f"AVCC NAL length {size} at offset {position} overruns the "
                f"{len(data)}-byte access unit; is the stream Annex B?"
            )
        nals.append(data[position : position + size])
        position += size
    return nals


@dataclass
class H264Config:
    """Codec configuration from extradata: framing and parameter sets."""

    avcc: bool
    length_size: int
    sps: list[bytes]
    pps: list[bytes]


def parse_extradata(extradata: bytes | None) -> H264Config:
    """Read SPS/PPS from avcC (MP4) or Annex B (RTSP sprop) extradata."""
    if not extradata:
        return H264Config(avcc=False, length_size=4, sps=[], pps=[])
    if extradata[0] != 1:
        nals = split_annexb(extradata)
        return H264Config(
            avcc=False,
            length_size=4,
            sps=[nal for nal in nals if nal_type(nal) == NAL_SPS],
            pps=[nal for nal in nals if nal_type(nal) == NAL_PPS],
        )
    # ISO/IEC 14496-15 AVCDecoderConfigurationRecord.
    try:
        length_size = (extradata[4] & 0x03) + 1
        count = extradata[5] & 0x1F
        position = 6
        sps = []
        for _ in range(count):
            (size,) = struct.unpack_from(">H", extradata, position)
            sps.append(extradata[position + 2 : position + 2 + size])
            position += 2 + size
        count = extradata[position]
        position += 1
        pps = []
        for _ in range(count):
            (size,) = struct.unpack_from(">H", extradata, position)
            pps.append(extradata[position + 2 : position + 2 + size])
            position += 2 + size
    except (IndexError, struct.error):
        raise BitstreamError(
            f"avcC extradata of {len(extradata)} bytes is truncated"
        ) from None
    return H264Config(avcc=True, length_size=length_size, sps=sps, pps=pps)


def profile_level_id(sps: bytes) -> str:
    """Return the SDP profile-level-id (profile_idc, constraint flags,
    level_idc as six hex digits) from an SPS NAL unit."""
    if len(sps) < 4 or nal_type(sps) != NAL_SPS:
        raise BitstreamError(f"expected an SPS NAL unit, got {sps[:4].hex()!r}")
    return sps[1:4].hex()


def h264_codec(
    profile_level: str, payload_type: int = VIDEO_PAYLOAD_TYPE
) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=VIDEO_CLOCK_RATE,
        payloadType=payload_type,
        rtcpFeedback=[
            RTCRtcpFeedback(type="nack"),
            RTCRtcpFeedback(type="nack", parameter="pli"),
            RTCRtcpFeedback(type="goog-remb"),
        ],
        parameters={
            "level-asymmetry-allowed": "1",
            "packetization-mode": "1",
            "profile-level-id": profile_level,
        },
    )


def g711_codec(name: str) -> RTCRtpCodecParameters:
    if name not in ("PCMA", "PCMU"):
        raise ValueError(f"G.711 codec must be PCMA or PCMU, got {name!r}")
    return RTCRtpCodecParameters(
        mimeType=f"audio/{name}",
        clockRate=AUDIO_CLOCK_RATE,
        channels=1,
        payloadType=8 if name == "PCMA" else 0,
    )


class AccessUnitFramer:
    """Turns demuxed H.264 packets into clean NAL unit lists.

    Accepts AVCC or Annex B per the extradata, drops access unit delimiters and
    filler, remembers the latest SPS/PPS, and puts them in front of every IDR
    that lacks them so a viewer can start decoding at any keyframe.
    """

    def __init__(self, extradata: bytes | None) -> None:
        config = parse_extradata(extradata)
        self.avcc = config.avcc
        self.length_size = config.length_size
        self.sps = config.sps[0] if config.sps else None
        self.pps = config.pps[0] if config.pps else None

    def frame(self, data: bytes) -> list[bytes]:
        if self.avcc:
            nals = split_avcc(data, self.length_size)
        else:
            nals = split_annexb(data)
        nals_out: list[bytes] = []
        for nal in nals:
            kind = nal_type(nal)
            if kind in (NAL_AUD, NAL_FILLER):
                continue
            if kind == NAL_SPS:
                self.sps = nal
            elif kind == NAL_PPS:
                self.pps = nal
            nals_out.append(nal)
        kinds = {nal_type(nal) for nal in nals_out}
        if NAL_IDR in kinds:
            prefix = []
            if NAL_SPS not in kinds and self.sps:
                prefix.append(self.sps)
            if NAL_PPS not in kinds and self.pps:
                prefix.append(self.pps)
            nals_out = prefix + nals_out
        return nals_out

    @property
    def profile_level_id(self) -> str | None:
        return profile_level_id(self.sps) if self.sps else None


def is_keyframe(nals: list[bytes]) -> bool:
    return any(nal_type(nal) == NAL_IDR for nal in nals)


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


class RtpTimeline:
    """Maps media time in seconds to RTP timestamps of one clock rate.

    The RTP timestamp starts at a random value and stays continuous across
    reconnects and source jumps. After `rebase()`, or when the media time
    goes backwards or jumps ahead by more than `max_gap` seconds, the next
    timestamp follows the last one by the wall-clock time that passed.
    """

    def __init__(self, clock_rate: int, max_gap: float = 10.0) -> None:
        self.clock_rate = clock_rate
        self.max_gap = max_gap
        self._origin_rtp = random.getrandbits(32)
        self._origin_time: float | None = None
        self._last_rtp: int | None = None
        self._last_time = 0.0
        self._last_wall = 0.0

    def rebase(self) -> None:
        self._origin_time = None

    def timestamp(self, seconds: float | None) -> int:
        wall = time.monotonic()
        if seconds is None:
            # No usable pts: pace by the wall clock.
            seconds = (
                (self._last_time + (wall - self._last_wall))
                if (self._last_rtp is not None)
                else 0.0
            )
            if self._origin_time is None:
                self._origin_time = seconds
        elif self._origin_time is not None and not (
            0 <= seconds - self._last_time <= self.max_gap
        ):
            self._origin_time = None
        if self._origin_time is None:
            if self._last_rtp is not None:
                elapsed = max(wall - self._last_wall, 1 / self.clock_rate)
                self._origin_rtp = self._last_rtp + round(elapsed * self.clock_rate)
            self._origin_time = seconds
        value = self._origin_rtp + round(
            (seconds - self._origin_time) * self.clock_rate
        )
        self._last_rtp = value
        self._last_time = seconds
        self._last_wall = wall
        return value & 0xFFFFFFFF


def media_seconds(pts: int | None, time_base: Fraction | None) -> float | None:
    if pts is None or time_base is None:
        return None
    return float(pts * time_base)


class RtpSequencer:
    """Sequence numbers and SSRC of one RTP stream, kept across reconnects."""

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        self.ssrc = random.getrandbits(32) or 1
        self.sequence = random.getrandbits(16)

    def packet(self, payload: bytes, timestamp: int, marker: bool) -> RtpPacket:
        packet = RtpPacket(
            payload_type=self.payload_type,
            marker=int(marker),
            sequence_number=self.sequence,
            timestamp=timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet


class H264Packetizer(RtpSequencer):
    def __init__(
        self, payload_type: int = VIDEO_PAYLOAD_TYPE, max_payload: int = MAX_PAYLOAD
    ) -> None:
        super().__init__(payload_type)
        if max_payload < 100:
            raise ValueError(
                f"max_payload must be at least 100 bytes, got {max_payload}"
            )
        self.max_payload = max_payload

    def packetize(self, nals: list[bytes], timestamp: int) -> list[RtpPacket]:
        """Packetize one access unit; every packet carries `timestamp`."""
        payloads: list[bytes] = []
        pending: list[bytes] = []  # small NAL units waiting to be aggregated

        def flush() -> None:
            if len(pending) == 1:
                payloads.append(pending[0])
            elif pending:
                payloads.append(_stap_a(pending))
            pending.clear()

        for nal in nals:
            if len(nal) > self.max_payload:
                flush()
                payloads.extend(_fu_a(nal, self.max_payload))
                continue
            aggregated = 1 + sum(2 + len(item) for item in pending) + 2 + len(nal)
            if pending and aggregated > self.max_payload:
                flush()
            pending.append(nal)
        flush()
        last = len(payloads) - 1
        return [
            self.packet(payload, timestamp, marker=index == last)
            for index, payload in enumerate(payloads)
        ]


def _stap_a(nals: list[bytes]) -> bytes:
    # F bit is the OR of the aggregated units, NRI their maximum (RFC 6184 5.7).
    forbidden = max(nal[0] & 0x80 for nal in nals)
    nri = max(nal[0] & 0x60 for nal in nals)
    parts = [bytes([forbidden | nri | NAL_STAP_A])]
    for nal in nals:
        parts.append(len(nal).to_bytes(2, "big"))
        parts.append(nal)
    return b"".join(parts)


def _fu_a(nal: bytes, max_payload: int) -> list[bytes]:
    indicator = (nal[0] & 0xE0) | NAL_FU_A
    kind = nal[0] & 0x1F
    body = nal[1:]
    chunk = max_payload - 2
    # Equal-sized fragments, so the last one is not a tiny runt.
    count = -(-len(body) // chunk)
    size = -(-len(body) // count)
    fragments = []
    for index in range(count):
        header = kind
        if index == 0:
            header |= 0x80
        if index == count - 1:
            header |= 0x40
        piece = body[index * size : (index + 1) * size]
        fragments.append(bytes([indicator, header]) + piece)
    return fragments


class G711Packetizer(RtpSequencer):
    """G.711 samples (one byte each) into 20 ms RTP packets at 8 kHz."""

    def __init__(self, name: str) -> None:
        super().__init__(g711_codec(name).payloadType or 0)
        self.name = name
        self._talkspurt = True

    def restart(self) -> None:
        """Mark the next packet as the start of a talkspurt (after a gap)."""
        self._talkspurt = True

    def packetize(self, samples: bytes, timestamp: int) -> list[RtpPacket]:
        packets = []
        for offset in range(0, len(samples), G711_SAMPLES_PER_PACKET):
            chunk = samples[offset : offset + G711_SAMPLES_PER_PACKET]
            packets.append(
                self.packet(chunk, (timestamp + offset) & 0xFFFFFFFF, self._talkspurt)
            )
            self._talkspurt = False
        return packets
