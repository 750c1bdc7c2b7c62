"""RTP payload inspection and header rewriting for forwarding, with no I/O.

The relay never decodes media. What it must know of a payload is whether a
packet starts a keyframe, so that a subscriber starts (or restarts after drops)
on a picture its decoder can use.
"""

from __future__ import annotations

import struct

# H.264 NAL unit types (ITU-T H.264 table 7-1) and RTP packet types (RFC 6184).
H264_NAL_IDR = 5
H264_NAL_SPS = 7
H264_STAP_A = 24
H264_FU_A = 28

_RTP_VERSION_BITS = 0x80
_SEQ = struct.Struct("!H")
_SSRC = struct.Struct("!L")


def is_vp8_keyframe_start(payload: bytes) -> bool:
    """Tell whether a VP8 RTP payload starts a keyframe (RFC 7741 section 4)."""
    if not payload:
        return False
    first = payload[0]
    start_of_partition = first & 0x10
    partition_index = first & 0x07
    if not start_of_partition or partition_index != 0:
        return False
    pos = 1
    if first & 0x80:  # X: extended control bits present
        if len(payload) < 2:
            return False
        ext = payload[1]
        pos = 2
        if ext & 0x80:  # I: picture id, 7 or 15 bits
            if len(payload) <= pos:
                return False
            pos += 2 if payload[pos] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            pos += 1
        if ext & 0x30:  # T or K: TID/Y/KEYIDX byte
            pos += 1
    if len(payload) <= pos:
        return False
    # The P bit of the VP8 payload header is 0 for a keyframe (RFC 6386 9.1).
    return payload[pos] & 0x01 == 0


def is_vp9_keyframe_start(payload: bytes) -> bool:
    """Tell whether a VP9 RTP payload starts a keyframe (RFC 9628 section 4.2):
    B (beginning of frame) set and P (inter-picture predicted) clear."""
    if not payload:
        return False
    first = payload[0]
    return bool(first & 0x08) and not first & 0x40


def is_h264_keyframe_start(payload: bytes) -> bool:
    """Tell whether an H.264 RTP payload starts an IDR picture or carries the SPS
    that precedes it (RFC 6184 section 5)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (H264_NAL_IDR, H264_NAL_SPS):
        return True
    if nal_type == H264_STAP_A:
        pos = 1
        while pos + 2 < len(payload):
            size = (payload[pos] << 8) | payload[pos + 1]
            pos += 2
            if size == 0 or pos + size > len(payload):
                return False
            if payload[pos] & 0x1F in (H264_NAL_IDR, H264_NAL_SPS):
                return True
            pos += size
        return False
    if nal_type == H264_FU_A and len(payload) > 1:
        fu_header = payload[1]
        return bool(fu_header & 0x80) and fu_header & 0x1F == H264_NAL_IDR
    return False


def keyframe_detector(mime_type: str):
    """Return the keyframe test for a codec, or None for codecs where every
    packet is a valid starting point (audio)."""
    mime = mime_type.lower()
    if mime == "video/vp8":
        return is_vp8_keyframe_start
    if mime == "video/vp9":
        return is_vp9_keyframe_start
    if mime == "video/h264":
        return is_h264_keyframe_start
    return None


def rewrite_header(
    packet: bytes, payload_type: int, sequence_number: int, ssrc: int
) -> bytearray:
    """Copy a serialized RTP packet with a new payload type, sequence number and
    SSRC. The marker bit, timestamp, extensions and payload are kept."""
    out = bytearray(packet)
    out[1] = (out[1] & 0x80) | (payload_type & 0x7F)
    _SEQ.pack_into(out, 2, sequence_number)
    _SSRC.pack_into(out, 8, ssrc)
    return out


def is_rtp_version_2(packet: bytes) -> bool:
    return len(packet) >= 12 and packet[0] & 0xC0 == _RTP_VERSION_BITS


def seq_newer(a: int, b: int) -> bool:
    """Tell whether 16-bit sequence number `a` comes after `b` (RFC 3550
    wrap-around arithmetic)."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000
