"""H.264 and G.711 packetization, checked by depacketizing with aiortc and
decoding with PyAV (the decode happens in the test only)."""

from __future__ import annotations

import av
import pytest
from aiortc.codecs.h264 import H264PayloadDescriptor

from media.cameras.packetize import (
    NAL_FU_A,
    NAL_IDR,
    NAL_PPS,
    NAL_SPS,
    NAL_STAP_A,
    AccessUnitFramer,
    BitstreamError,
    G711Packetizer,
    H264Packetizer,
    RtpTimeline,
    annexb,
    is_keyframe,
    media_seconds,
    nal_type,
    parse_extradata,
    profile_level_id,
    split_annexb,
    split_avcc,
)
from tests.rtsp_server import CLIP, CLIP_HEIGHT, CLIP_PROFILE_LEVEL_ID, CLIP_WIDTH


def depacketize(packets) -> list[bytes]:
    """Rebuild Annex B access units from RTP packets, split at marker bits."""
    units = []
    current = b""
    for packet in packets:
        _, data = H264PayloadDescriptor.parse(packet.payload)
        current += data
        if packet.marker:
            units.append(current)
            current = b""
    return units


def decode_units(units: list[bytes]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264", "r")
    frames = []
    for unit in units:
        frames.extend(decoder.decode(av.Packet(unit)))
    frames.extend(decoder.decode(None))
    return frames


def clip_packets(limit: int = 30):
    """Packetize the first `limit` access units of the MP4 clip (AVCC)."""
    container = av.open(str(CLIP))
    try:
        stream = container.streams.video[0]
        framer = AccessUnitFramer(stream.codec_context.extradata)
        packetizer = H264Packetizer()
        timeline = RtpTimeline(90000)
        result = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            nals = framer.frame(bytes(packet))
            seconds = media_seconds(packet.pts, packet.time_base)
            result.append(
                (nals, packetizer.packetize(nals, timeline.timestamp(seconds)))
            )
            if len(result) == limit:
                break
        return framer, result
    finally:
        container.close()


def test_split_annexb_three_and_four_byte_start_codes():
    data = b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65\x88\x00"
    assert split_annexb(data) == [b"\x67\x42", b"\x68\xce", b"\x65\x88"]


def test_split_avcc_rejects_overrun():
    with pytest.raises(BitstreamError, match="overruns"):
        split_avcc(b"\x00\x00\x00\x09\x65\x88", 4)


def test_extradata_avcc_and_annexb_give_same_sps():
    container = av.open(str(CLIP))
    extradata = container.streams.video[0].codec_context.extradata
    container.close()
    avcc = parse_extradata(extradata)
    assert avcc.avcc is True
    assert avcc.length_size == 4
    rebuilt = parse_extradata(annexb(avcc.sps + avcc.pps))
    assert rebuilt.avcc is False
    assert rebuilt.sps == avcc.sps
    assert rebuilt.pps == avcc.pps
    assert profile_level_id(avcc.sps[0]) == CLIP_PROFILE_LEVEL_ID


def test_profile_level_id_rejects_non_sps():
    with pytest.raises(BitstreamError, match="expected an SPS"):
        profile_level_id(b"\x68\xce\x3c\x80")


def test_idr_gets_parameter_sets_from_extradata():
    framer, result = clip_packets(limit=2)
    first_nals, first_packets = result[0]
    kinds = [nal_type(nal) for nal in first_nals]
    assert kinds.index(NAL_SPS) < kinds.index(NAL_PPS) < kinds.index(NAL_IDR)
    assert is_keyframe(first_nals)
    # SPS and PPS travel together in one STAP-A at the head of the keyframe.
    assert first_packets[0].payload[0] & 0x1F == NAL_STAP_A
    assert framer.profile_level_id == CLIP_PROFILE_LEVEL_ID


def test_framer_repeats_parameter_sets_before_every_idr():
    framer = AccessUnitFramer(None)
    sps = b"\x67\x4d\x40\x1f\xda"
    pps = b"\x68\xef\x3c\x80"
    idr = b"\x65\x88\x84"
    first = framer.frame(annexb([b"\x09\xf0", sps, pps, idr]))
    second = framer.frame(annexb([idr]))
    assert first == [sps, pps, idr]  # the access unit delimiter is dropped
    assert second == [sps, pps, idr]
    assert framer.frame(annexb([b"\x41\x9a"])) == [b"\x41\x9a"]


def test_clip_packets_decode_to_full_size_frames():
    _, result = clip_packets(limit=30)
    packets = [packet for _, group in result for packet in group]
    frames = decode_units(depacketize(packets))
    assert len(frames) == 30
    assert {(frame.width, frame.height) for frame in frames} == {
        (CLIP_WIDTH, CLIP_HEIGHT)
    }


def test_marker_on_last_packet_of_each_access_unit():
    _, result = clip_packets(limit=10)
    for _, group in result:
        assert [packet.marker for packet in group] == [0] * (len(group) - 1) + [1]
        assert len({packet.timestamp for packet in group}) == 1


def test_packets_fit_payload_limit_and_fragment():
    _, result = clip_packets(limit=1)
    packets = result[0][1]
    assert max(len(packet.payload) for packet in packets) <= 1200
    fragments = [p for p in packets if p.payload[0] & 0x1F == NAL_FU_A]
    assert len(fragments) > 10  # the 105 kB keyframe is split with FU-A
    assert fragments[0].payload[1] & 0x80  # start bit
    assert fragments[-1].payload[1] & 0x40  # end bit


def test_sequence_numbers_and_timestamps_follow_pts():
    _, result = clip_packets(limit=5)
    packets = [packet for _, group in result for packet in group]
    for before, after in zip(packets, packets[1:], strict=False):
        assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
        assert after.ssrc == before.ssrc
    stamps = [group[0].timestamp for _, group in result]
    # 25 fps is 3600 ticks of the 90 kHz clock per frame.
    assert [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:], strict=False)] == [
        3600
    ] * 4


def test_timeline_continues_after_rebase():
    timeline = RtpTimeline(90000)
    first = timeline.timestamp(100.0)
    second = timeline.timestamp(100.04)
    timeline.rebase()
    third = timeline.timestamp(0.0)  # a new session starts its pts at zero
    assert (second - first) & 0xFFFFFFFF == 3600
    assert 0 < (third - second) & 0xFFFFFFFF < 90000


def test_g711_packets_are_20ms():
    packetizer = G711Packetizer("PCMA")
    packets = packetizer.packetize(bytes(range(256)) * 2, timestamp=1000)
    assert [len(packet.payload) for packet in packets] == [160, 160, 160, 32]
    assert [packet.timestamp for packet in packets] == [1000, 1160, 1320, 1480]
    assert {packet.payload_type for packet in packets} == {8}
    assert [packet.marker for packet in packets] == [1, 0, 0, 0]
    assert G711Packetizer("PCMU").payload_type == 0
