"""Transcoder: decode and re-encode as H.264 baseline without B-frames."""

from __future__ import annotations

import av
from av.video.frame import PictureType

from media.cameras.packetize import NAL_SPS, nal_type, profile_level_id, split_annexb
from media.cameras.transcode import Transcoder
from tests.rtsp_server import CLIP, CLIP_HEIGHT, CLIP_WIDTH


def transcode_clip(frames: int, keyframe_at: int | None = None):
    container = av.open(str(CLIP))
    stream = container.streams.video[0]
    transcoder = Transcoder(
        "test", "h264", stream.codec_context.extradata, 1_000_000, 25.0
    )
    outputs = []
    count = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if count == keyframe_at:
                transcoder.request_keyframe()
            outputs.extend(
                transcoder.transcode(
                    bytes(packet), packet.pts, packet.dts, packet.time_base
                )
            )
            count += 1
            if count == frames:
                break
    finally:
        container.close()
    return outputs


def test_output_is_constrained_baseline_with_sps_in_band():
    outputs = transcode_clip(frames=10)
    assert len(outputs) == 10
    data, seconds, keyframe = outputs[0]
    nals = split_annexb(data)
    sps = [nal for nal in nals if nal_type(nal) == NAL_SPS]
    assert keyframe is True
    assert seconds == 0.0
    assert profile_level_id(sps[0]).startswith("42c0")
    times = [item[1] for item in outputs]
    assert times == sorted(times)
    decoder = av.CodecContext.create("h264", "r")
    frames = [f for item in outputs for f in decoder.decode(av.Packet(item[0]))]
    assert {(f.width, f.height) for f in frames} == {(CLIP_WIDTH, CLIP_HEIGHT)}
    assert PictureType.B not in {f.pict_type for f in frames}


def test_keyframe_request_makes_next_frame_idr():
    outputs = transcode_clip(frames=20, keyframe_at=12)
    keyframes = [index for index, item in enumerate(outputs) if item[2]]
    # The clip itself has a single IDR, and the encoder's own interval is 50.
    assert keyframes == [0, 12]
