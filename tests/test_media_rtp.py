"""Keyframe detection on payloads made by real encoders, and header rewriting."""

from __future__ import annotations

import fractions

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RtpPacket

from media.rtp import (
    is_h264_keyframe_start,
    is_vp8_keyframe_start,
    is_vp9_keyframe_start,
    keyframe_detector,
    rewrite_header,
    seq_newer,
)


def _frames(count: int) -> list[av.VideoFrame]:
    frames = []
    for index in range(count):
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        for plane_index, plane in enumerate(frame.planes):
            value = (40 + index * 7) % 200 if plane_index == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def _encode(encoder, frames) -> list[list[bytes]]:
    pictures = []
    for index, frame in enumerate(frames):
        payloads, _ = encoder.encode(frame, force_keyframe=index == 0)
        pictures.append(payloads)
    return pictures


@pytest.mark.parametrize(
    ("encoder_class", "detect"),
    [(Vp8Encoder, is_vp8_keyframe_start), (H264Encoder, is_h264_keyframe_start)],
)
def test_keyframe_detected_only_at_start(encoder_class, detect):
    pictures = _encode(encoder_class(), _frames(6))
    first = pictures[0]
    assert detect(first[0])
    # Packets after the first of a keyframe, and every packet of the later
    # (delta) pictures, are not starting points.
    for payload in first[1:]:
        if encoder_class is Vp8Encoder:
            assert not detect(payload)
    for payloads in pictures[1:]:
        assert not detect(payloads[0])


def test_h264_keyframe_in_stap_a_and_fu_a():
    sps = bytes([0x67, 0x42, 0xC0, 0x1F])
    pps = bytes([0x68, 0xCE, 0x3C, 0x80])
    stap = bytes([0x18]) + len(sps).to_bytes(2, "big") + sps
    stap += len(pps).to_bytes(2, "big") + pps
    assert is_h264_keyframe_start(stap)
    fu_start_idr = bytes([0x7C, 0x85, 0x00])
    fu_middle_idr = bytes([0x7C, 0x05, 0x00])
    fu_start_slice = bytes([0x7C, 0x81, 0x00])
    assert is_h264_keyframe_start(fu_start_idr)
    assert not is_h264_keyframe_start(fu_middle_idr)
    assert not is_h264_keyframe_start(fu_start_slice)
    # A STAP-A whose size field runs past the end is not trusted.
    assert not is_h264_keyframe_start(bytes([0x18, 0x00, 0x40, 0x67]))


def test_vp9_descriptor_bits():
    assert is_vp9_keyframe_start(bytes([0x08, 0x00]))  # B set, P clear
    assert not is_vp9_keyframe_start(bytes([0x48, 0x00]))  # P set
    assert not is_vp9_keyframe_start(bytes([0x00, 0x00]))  # not a frame start


def test_empty_and_truncated_payloads_are_not_keyframes():
    for detect in (
        is_vp8_keyframe_start,
        is_vp9_keyframe_start,
        is_h264_keyframe_start,
    ):
        assert not detect(b"")
    assert not is_vp8_keyframe_start(bytes([0x90]))  # X set, no extension byte
    assert not is_vp8_keyframe_start(bytes([0x90, 0x80]))  # I set, no picture id


def test_detector_per_codec():
    assert keyframe_detector("video/VP8") is is_vp8_keyframe_start
    assert keyframe_detector("video/H264") is is_h264_keyframe_start
    assert keyframe_detector("audio/opus") is None


def test_rewrite_keeps_marker_timestamp_and_payload():
    packet = RtpPacket(
        payload_type=96, marker=1, sequence_number=65535, timestamp=123456, ssrc=1
    )
    packet.payload = b"\x10abcdef"
    data = packet.serialize()
    out = RtpPacket.parse(bytes(rewrite_header(data, 101, 7, 0xDEADBEEF)))
    assert out.payload_type == 101
    assert out.marker == 1
    assert out.sequence_number == 7
    assert out.ssrc == 0xDEADBEEF
    assert out.timestamp == 123456
    assert out.payload == b"\x10abcdef"


def test_sequence_comparison_wraps():
    assert seq_newer(1, 65535)
    assert not seq_newer(65535, 1)
    assert seq_newer(100, 50)
    assert not seq_newer(50, 50)
