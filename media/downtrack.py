"""Down tracks: one up track's media leaving the hub for one subscriber.

`DownTrack` holds the per-subscriber rewriting state (sequence numbers, SSRC,
payload type), the drop policy and the counters. `ForwardingSender` is the
aiortc `RTCRtpSender` of the subscriber's transceiver with its encoder loop
replaced: it sends nothing by itself, answers NACKs from the up track's
history, passes keyframe requests upstream and sends sender reports that match
the forwarded packets.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from typing import TYPE_CHECKING

from aioice.ice import StunProtocol
from aiortc import clock
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
    wrap_rtx,
)
from aiortc.utils import uint16_add

from media.rtp import rewrite_header, seq_newer

if TYPE_CHECKING:
    from media.uptrack import UpTrack

logger = logging.getLogger(__name__)

NTP_FRACTION = 1 << 32

# Pacing of the cached pictures sent to a viewer who opens a running camera:
# 24 packets every 10 ms, about 2,400 packets/s, 17 times a 1.2 Mbit/s
# camera's rate, so a 700-packet group of pictures goes out in 0.3 s.
REPLAY_BATCH = 24
REPLAY_INTERVAL = 0.01


class _Link:
    """The nominated UDP path of a connected DTLS transport: what is needed
    to protect and send a packet without going through three coroutines."""

    __slots__ = ("pair", "udp", "addr", "srtp")

    def __init__(self, pair, udp, addr, srtp) -> None:
        self.pair = pair
        self.udp = udp
        self.addr = addr
        self.srtp = srtp


class DownTrack:
    """The forwarding state of one up track towards one subscriber."""

    def __init__(
        self,
        up: UpTrack,
        subscriber: str,
        sender: ForwardingSender,
        max_backlog_bytes: int = 262144,
    ) -> None:
        self.up = up
        self.subscriber = subscriber
        self.sender = sender
        self.max_backlog_bytes = max_backlog_bytes
        self.kind = up.kind
        self.closed = False
        # Until the negotiated payload type is known nothing is sent.
        self.payload_type: int | None = None
        self.rtx_payload_type: int | None = None
        self.ssrc = sender._ssrc
        self.rtx_ssrc = sender._rtx_ssrc
        self._rtx_seq = random.randint(0, 0xFFFF)
        self._link: _Link | None = None
        self._needs_keyframe = up.kind == "video"
        # Output sequence = (input + offset) mod 2^16; the offset changes only
        # when the track restarts on a keyframe after drops, so there are no
        # gaps the subscriber would NACK for nothing.
        self._next_seq = random.randint(0, 0xFFFF)
        self._seq_offset = 0
        self._restart_in_seq: int | None = None
        self._started = False
        self._last_in_seq: int | None = None

        # counters
        self.packets = 0
        self.bytes = 0
        self.drops = 0
        self.skipped_waiting_keyframe = 0
        self.keyframe_requests = 0
        self.nacks = 0
        self.retransmits = 0
        self.replayed = 0
        # Packets still to send after connecting to a camera's cached
        # pictures: (sequence number, packet, keyframe start), in order.
        self._replay: collections.deque | None = None
        self.remb_bitrate: int | None = None
        self.fraction_lost = 0
        self.packets_lost = 0
        self.jitter = 0
        self.last_rtp_timestamp: int | None = None
        self.last_send_time = 0.0

    def __repr__(self) -> str:
        return f"DownTrack({self.up.id} -> {self.subscriber})"

    # --- media path -------------------------------------------------------

    def write(self, in_seq: int, data: bytes, keyframe_start: bool) -> None:
        """Forward one serialized up packet; called by the up track."""
        if self.closed or self.payload_type is None:
            return
        if self._replay is not None:
            # Live packets wait behind the cached ones still being paced out.
            self._replay.append((in_seq, data, keyframe_start))
            return
        link = self._link
        if link is None or link.pair is not self._nominated_pair():
            link = self._resolve_link()
            if link is None:
                return
            if self._replay_cached_pictures():
                # The replay ends with this packet: the up track caches a
                # packet before it writes it to its down tracks.
                return
        self._forward(in_seq, data, keyframe_start, link)

    def _replay_cached_pictures(self) -> bool:
        """Start sending a camera's packets since its last keyframe, so a
        viewer who opens a running feed starts at once instead of waiting up
        to a whole keyframe interval. Returns False when nothing is cached."""
        cached = self.up.cached_pictures()
        if not cached or self._link is None:
            return False
        self._needs_keyframe = True
        self.replayed += len(cached)
        self._replay = collections.deque(
            (seq, data, index == 0) for index, (seq, data) in enumerate(cached)
        )
        logger.debug("%r starts with %d cached packets", self, len(cached))
        self._replay_step()
        return True

    def _replay_step(self) -> None:
        """Send the next REPLAY_BATCH queued packets, then come back after
        REPLAY_INTERVAL: a whole group of pictures at once (700 packets for a
        camera with a 5 s keyframe interval) overflows a viewer's socket."""
        queue = self._replay
        if queue is None:
            return
        link = self._link
        if self.closed or link is None:
            self._replay = None
            return
        for _ in range(min(REPLAY_BATCH, len(queue))):
            seq, data, keyframe_start = queue.popleft()
            self._forward(seq, data, keyframe_start, link, replay=True)
        if queue:
            asyncio.get_running_loop().call_later(REPLAY_INTERVAL, self._replay_step)
        else:
            self._replay = None

    def _forward(
        self,
        in_seq: int,
        data: bytes,
        keyframe_start: bool,
        link: _Link,
        replay: bool = False,
    ) -> None:
        if self._needs_keyframe:
            if not keyframe_start:
                self.skipped_waiting_keyframe += 1
                return
            self._needs_keyframe = False
            self._seq_offset = (self._next_seq - in_seq) & 0xFFFF
            self._restart_in_seq = in_seq
            self._started = True
        elif not self._started:
            # Audio starts on any packet.
            self._seq_offset = (self._next_seq - in_seq) & 0xFFFF
            self._restart_in_seq = in_seq
            self._started = True
        elif self._restart_in_seq is not None and seq_newer(
            self._restart_in_seq, in_seq
        ):
            # A late retransmission from before the last restart: its number
            # has no place in the current numbering.
            return

        # Replayed packets skip the backlog check, because dropping part of
        # the cached pictures would only make the viewer wait for the camera's
        # next keyframe. The replay is paced, and MAX_GOP_PACKETS bounds it.
        if not replay and link.udp.get_write_buffer_size() > self.max_backlog_bytes:
            self._drop()
            return

        out_seq = (in_seq + self._seq_offset) & 0xFFFF
        packet = rewrite_header(data, self.payload_type, out_seq, self.ssrc)
        try:
            link.udp.sendto(link.srtp.protect(bytes(packet)), link.addr)
        except Exception as exc:
            logger.debug("%r send failed: %s", self, exc)
            self._link = None
            return
        if self._last_in_seq is None or seq_newer(in_seq, self._last_in_seq):
            self._last_in_seq = in_seq
            self._next_seq = (out_seq + 1) & 0xFFFF
            self.last_rtp_timestamp = int.from_bytes(data[4:8], "big")
            self.last_send_time = time.time()
        self.packets += 1
        self.bytes += len(data) - 12

    def _drop(self) -> None:
        self.drops += 1
        if self.kind == "video" and not self._needs_keyframe:
            self._needs_keyframe = True
            logger.info(
                "%r: UDP backlog over %d bytes, dropping until next keyframe",
                self,
                self.max_backlog_bytes,
            )
            self.up.request_keyframe()

    def _nominated_pair(self):
        try:
            return self.sender.transport.transport._connection._nominated.get(1)
        except AttributeError:
            return None

    def _resolve_link(self) -> _Link | None:
        dtls = self.sender.transport
        if dtls.state != "connected":
            return None
        pair = self._nominated_pair()
        if pair is None or not isinstance(pair.protocol, StunProtocol):
            # NOTE: relayed (TURN) pairs are not forwarded on the direct path.
            return None
        udp = pair.protocol.transport
        self._link = _Link(pair, udp, pair.remote_addr, dtls._tx_srtp)
        if self.kind == "video":
            self._needs_keyframe = True
            if not self.up.cached_pictures():
                self.up.request_keyframe()
        logger.debug("%r connected via %s", self, pair)
        return self._link

    # --- feedback from the subscriber ---------------------------------------

    def retransmit(self, out_seq: int) -> None:
        self.nacks += 1
        link = self._link
        if link is None or self.payload_type is None:
            return
        in_seq = (out_seq - self._seq_offset) & 0xFFFF
        data = self.up.lookup(in_seq)
        if data is None:
            return
        if self.rtx_payload_type is None:
            packet = bytes(rewrite_header(data, self.payload_type, out_seq, self.ssrc))
        else:
            original = RtpPacket.parse(data)
            original.sequence_number = out_seq
            rtx = wrap_rtx(
                original,
                payload_type=self.rtx_payload_type,
                sequence_number=self._rtx_seq,
                ssrc=self.rtx_ssrc,
            )
            self._rtx_seq = uint16_add(self._rtx_seq, 1)
            packet = rtx.serialize(self.up._ext_map)
        try:
            link.udp.sendto(link.srtp.protect(packet), link.addr)
        except Exception as exc:
            logger.debug("%r retransmit failed: %s", self, exc)
            return
        self.retransmits += 1

    def keyframe_requested(self) -> None:
        self.keyframe_requests += 1
        self.up.request_keyframe()

    # --- lifecycle --------------------------------------------------------

    def up_ended(self) -> None:
        self.closed = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.up.remove_down_track(self)

    def sender_info(self) -> RtcpSenderInfo:
        """Build the sender report fields: the RTP time now, derived from the
        publisher's own clock mapping when known."""
        now = time.time()
        clock_rate = self.up.codec.clockRate
        sender_clock = self.up.sender_clock
        if sender_clock is not None:
            elapsed = now - sender_clock.received_at
            ntp = sender_clock.ntp_timestamp + int(elapsed * NTP_FRACTION)
            rtp_ts = sender_clock.rtp_timestamp + int(elapsed * clock_rate)
        else:
            ntp = clock.current_ntp_time()
            base = self.last_rtp_timestamp or 0
            elapsed = now - self.last_send_time if self.last_send_time else 0.0
            rtp_ts = base + int(elapsed * clock_rate)
        return RtcpSenderInfo(
            ntp_timestamp=ntp & 0xFFFFFFFFFFFFFFFF,
            rtp_timestamp=rtp_ts & 0xFFFFFFFF,
            packet_count=self.packets & 0xFFFFFFFF,
            octet_count=self.bytes & 0xFFFFFFFF,
        )

    def stats(self) -> dict:
        return {
            "peer": self.subscriber,
            "packets": self.packets,
            "bytes": self.bytes,
            "drops": self.drops,
            "skipped_waiting_keyframe": self.skipped_waiting_keyframe,
            "keyframe_requests": self.keyframe_requests,
            "nacks": self.nacks,
            "retransmits": self.retransmits,
            "replayed": self.replayed,
            "fraction_lost": self.fraction_lost,
            "remb_bitrate": self.remb_bitrate,
        }


class ForwardingSender(RTCRtpSender):
    """An `RTCRtpSender` that forwards packets written by a `DownTrack`.

    An instance is made by changing the class of the sender that
    `RTCPeerConnection.addTransceiver` created, because aiortc has no way to
    pass in a sender; `bind` must be called before the connection negotiates.
    The parent's name-mangled private fields are reached as
    `_RTCRtpSender__name` (aiortc 1.16)."""

    down: DownTrack | None

    @classmethod
    def adopt(cls, sender: RTCRtpSender) -> ForwardingSender:
        sender.__class__ = cls
        forwarding = sender  # type: ignore[assignment]
        forwarding.down = None
        return forwarding  # type: ignore[return-value]

    def bind(self, down: DownTrack) -> None:
        self.down = down

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        down = self.down
        if down is not None and parameters.codecs:
            codec = parameters.codecs[0]
            down.payload_type = codec.payloadType
            for candidate in parameters.codecs[1:]:
                if (
                    candidate.mimeType.lower() == f"{down.kind}/rtx"
                    and candidate.parameters.get("apt") == codec.payloadType
                ):
                    down.rtx_payload_type = candidate.payloadType
        await super().send(parameters)

    async def _run_rtp(self, codec) -> None:  # type: ignore[override]
        # Packets are written by the DownTrack; this task only marks the
        # sender as running so that stop() works as aiortc expects.
        self._RTCRtpSender__rtp_started.set()  # type: ignore[attr-defined]
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        self._RTCRtpSender__rtp_exited.set()  # type: ignore[attr-defined]

    async def _run_rtcp(self) -> None:
        self._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        cname = self._RTCRtpSender__cname  # type: ignore[attr-defined]
        try:
            while True:
                # RFC 3550 section 6.2: randomise the interval to [0.5, 1.5] s.
                await asyncio.sleep(0.5 + random.random())
                down = self.down
                if down is None or down.packets == 0:
                    continue
                packets: list[AnyRtcpPacket] = [
                    RtcpSrPacket(ssrc=self._ssrc, sender_info=down.sender_info())
                ]
                if cname is not None:
                    packets.append(
                        RtcpSdesPacket(
                            chunks=[
                                RtcpSourceInfo(
                                    ssrc=self._ssrc, items=[(1, cname.encode())]
                                )
                            ]
                        )
                    )
                await self._send_rtcp(packets)
        except asyncio.CancelledError:
            pass
        await self._send_rtcp([RtcpByePacket(sources=[self._ssrc])])
        self._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        down = self.down
        if down is None:
            return
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for report in packet.reports:
                if report.ssrc == self._ssrc:
                    down.fraction_lost = report.fraction_lost
                    down.packets_lost = report.packets_lost
                    down.jitter = report.jitter
        elif isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            for seq in packet.lost:
                down.retransmit(seq)
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt in (
            RTCP_PSFB_FIR,
            RTCP_PSFB_PLI,
        ):
            down.keyframe_requested()
        elif isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return
            if self._ssrc in ssrcs:
                down.remb_bitrate = bitrate
