"""The slow-subscriber policy of a down track: bounded backlog, drops counted,
restart on a keyframe with no gap in sequence numbers.

A UDP socket whose send buffer stays full cannot be produced on demand on
loopback, so the socket here is a stand-in that reports a chosen backlog;
everything else (up track, packets from a real VP8 encoder, SRTP) is real."""

from __future__ import annotations

import asyncio
import fractions
import os

import av
from aioice.ice import StunProtocol
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RtpPacket
from pylibsrtp import Policy, Session

from media.downtrack import REPLAY_BATCH, REPLAY_INTERVAL, DownTrack
from media.uptrack import UpTrack

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


class BacklogSocket:
    """Stands in for the asyncio UDP transport of the nominated ICE pair."""

    def __init__(self) -> None:
        self.backlog = 0
        self.sent: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append(data)


class Chain:
    """Attribute chain sender.transport.transport._connection._nominated."""

    def __init__(self, **fields) -> None:
        self.__dict__.update(fields)


def _sender(udp: BacklogSocket):
    protocol = StunProtocol.__new__(StunProtocol)
    protocol.transport = udp
    pair = Chain(protocol=protocol, remote_addr=("127.0.0.1", 9))
    key = os.urandom(30)
    # Policies as aiortc's DTLS transport sets them up (aiortc 1.16).
    tx_policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    tx_policy.allow_repeat_tx = True
    tx_policy.window_size = 1024
    srtp = Session(tx_policy)
    connection = Chain(_nominated={1: pair})
    dtls = Chain(
        state="connected", transport=Chain(_connection=connection), _tx_srtp=srtp
    )
    return Chain(transport=dtls, _ssrc=4242, _rtx_ssrc=4343), key


def _decrypt(key: bytes, data: bytes) -> RtpPacket:
    """Open one packet with a new SRTP receiver (no replay window shared)."""
    session = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return RtpPacket.parse(session.unprotect(data))


def _vp8_pictures(count: int) -> list[list[bytes]]:
    encoder = Vp8Encoder()
    pictures = []
    for index in range(count):
        frame = av.VideoFrame(width=320, height=240, format="yuv420p")
        for plane_index, plane in enumerate(frame.planes):
            value = (30 + 5 * index) % 200 if plane_index == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, _ = encoder.encode(frame, force_keyframe=index in (0, 6))
        pictures.append(payloads)
    return pictures


def _feed(up: UpTrack, pictures, first_seq: int) -> int:
    seq = first_seq
    for index, payloads in enumerate(pictures):
        for position, payload in enumerate(payloads):
            packet = RtpPacket(
                payload_type=96,
                marker=int(position == len(payloads) - 1),
                sequence_number=seq & 0xFFFF,
                timestamp=index * 3000,
                ssrc=1,
                payload=payload,
            )
            up.forward(packet)
            seq += 1
    return seq


def test_slow_subscriber_drops_then_restarts_on_keyframe():
    keyframe_requests = []
    up = UpTrack(
        "t1",
        "video",
        VP8,
        "camera",
        "camera",
        request_keyframe=lambda: keyframe_requests.append(1),
        keyframe_request_interval=0,
    )
    udp = BacklogSocket()
    sender, key = _sender(udp)
    down = DownTrack(up, "p2", sender, max_backlog_bytes=1000)
    down.payload_type = 100
    up.add_down_track(down)
    pictures = _vp8_pictures(12)

    # Pictures 0-2 pass (0 is a keyframe), 3-8 meet a full socket buffer,
    # then the socket drains; 6 is a keyframe but arrives while dropping.
    seq = _feed(up, pictures[:3], 65530)
    sent_before_drops = len(udp.sent)
    assert sent_before_drops == sum(len(p) for p in pictures[:3])
    udp.backlog = 5000
    seq = _feed(up, pictures[3:9], seq)
    assert down.drops >= 1
    assert len(udp.sent) == sent_before_drops
    assert keyframe_requests, "no keyframe was asked of the publisher"
    udp.backlog = 0
    # Pictures 9-11 are deltas: skipped until a keyframe comes.
    seq = _feed(up, pictures[9:11], seq)
    assert len(udp.sent) == sent_before_drops
    assert down.skipped_waiting_keyframe > 0

    keyframe = _vp8_pictures(1)[0]
    _feed(up, [keyframe], seq)
    assert len(udp.sent) == sent_before_drops + len(keyframe)

    received = [_decrypt(key, data) for data in udp.sent]
    numbers = [p.sequence_number for p in received]
    # Contiguous across the wrap and across the restart: nothing to NACK.
    steps = [(b - a) & 0xFFFF for a, b in zip(numbers, numbers[1:], strict=False)]
    assert set(steps) == {1}
    assert {p.ssrc for p in received} == {4242}
    assert {p.payload_type for p in received} == {100}
    assert received[sent_before_drops].payload == keyframe[0]
    assert down.stats()["drops"] == down.drops


def test_nack_is_answered_from_history():
    up = UpTrack("t1", "video", VP8, "camera", "camera", request_keyframe=lambda: None)
    udp = BacklogSocket()
    sender, key = _sender(udp)
    down = DownTrack(up, "p2", sender)
    down.payload_type = 100
    up.add_down_track(down)
    pictures = _vp8_pictures(3)
    _feed(up, pictures, 1000)
    first = _decrypt(key, udp.sent[0])
    count = len(udp.sent)

    down.retransmit(first.sequence_number)
    assert len(udp.sent) == count + 1
    again = _decrypt(key, udp.sent[-1])
    assert again.sequence_number == first.sequence_number
    assert again.payload == first.payload
    assert down.retransmits == 1


def test_ended_up_track_stops_forwarding():
    up = UpTrack(
        "t1",
        "audio",
        RTCRtpCodecParameters(
            mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111
        ),
        "microphone",
        "microphone",
        request_keyframe=lambda: None,
    )
    udp = BacklogSocket()
    sender, _ = _sender(udp)
    down = DownTrack(up, "p2", sender)
    down.payload_type = 96
    up.add_down_track(down)
    up.forward(
        RtpPacket(
            payload_type=111,
            sequence_number=1,
            timestamp=960,
            ssrc=5,
            payload=b"\xfc\xff\xfe",
        )
    )
    assert len(udp.sent) == 1
    up.end()
    up.forward(
        RtpPacket(
            payload_type=111,
            sequence_number=2,
            timestamp=1920,
            ssrc=5,
            payload=b"\xfc\xff\xfe",
        )
    )
    assert len(udp.sent) == 1
    assert down.closed
    assert up.down_tracks == ()


async def test_late_viewer_gets_cached_pictures_paced():
    up = UpTrack(
        "cam-1-main",
        "video",
        VP8,
        "camera-feed",
        "南屏镇政府门口",
        request_keyframe=lambda: None,
        cache_gop=True,
    )
    pictures = _vp8_pictures(40)
    # The feed runs before anyone watches; its last keyframe is picture 6.
    seq = _feed(up, pictures[:39], 2000)
    since_keyframe = pictures[6:]

    udp = BacklogSocket()
    sender, key = _sender(udp)
    down = DownTrack(up, "p9", sender)
    down.payload_type = 100
    up.add_down_track(down)
    seq = _feed(up, pictures[39:40], seq)
    cached = sum(len(p) for p in since_keyframe)
    assert cached > REPLAY_BATCH
    # The first batch goes out at once, the rest later.
    assert len(udp.sent) == REPLAY_BATCH

    # A live picture that arrives meanwhile waits behind the cached ones.
    live = _vp8_pictures(41)[40]
    _feed(up, [live], seq)
    deadline = asyncio.get_running_loop().time() + 5
    while len(udp.sent) < cached + len(live):
        assert asyncio.get_running_loop().time() < deadline, len(udp.sent)
        await asyncio.sleep(REPLAY_INTERVAL)

    received = [_decrypt(key, data) for data in udp.sent]
    expected = [payload for picture in since_keyframe + [live] for payload in picture]
    # Everything since the keyframe arrives, in order, without a gap.
    assert [p.payload for p in received] == expected
    assert down.replayed == cached
    steps = [
        (b.sequence_number - a.sequence_number) & 0xFFFF
        for a, b in zip(received, received[1:], strict=False)
    ]
    assert set(steps) == {1}
