"""The receiving end of an up connection: RTP from a publisher goes straight to
its up track, with no jitter buffer and no decoder."""

from __future__ import annotations

import asyncio
import logging

from aiortc.codecs import is_rtx
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)

from media.uptrack import UpTrack

logger = logging.getLogger(__name__)


class ForwardingReceiver(RTCRtpReceiver):
    """An `RTCRtpReceiver` that hands each RTP packet to an `UpTrack`.

    Made by changing the class of the receiver that aiortc created (aiortc has
    no way to pass one in). It keeps aiortc's receiver reports, NACK
    generation and bandwidth estimate (REMB), and skips the jitter buffer and
    the decoder thread: aiortc decodes every incoming video frame otherwise,
    whether anyone watches or not. The parent's name-mangled fields are reached
    as `_RTCRtpReceiver__name` (aiortc 1.16)."""

    up: UpTrack | None
    dropped_no_track: int

    @classmethod
    def adopt(cls, receiver: RTCRtpReceiver) -> ForwardingReceiver:
        receiver.__class__ = cls
        forwarding = receiver  # type: ignore[assignment]
        forwarding.up = None
        forwarding.dropped_no_track = 0
        return forwarding  # type: ignore[return-value]

    def bind(self, up: UpTrack) -> None:
        self.up = up

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        started = self._RTCRtpReceiver__started  # type: ignore[attr-defined]
        await super().receive(parameters)
        if not started:
            # The parent starts a decoder thread; end it before any frame
            # reaches it. It then ends the receiver's own (unused) track.
            self._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        await super()._handle_rtcp_packet(packet)
        if isinstance(packet, RtcpSrPacket) and self.up is not None:
            info = packet.sender_info
            self.up.update_sender_clock(info.ntp_timestamp, info.rtp_timestamp)

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        if not self._enabled:
            return
        estimator = self._RTCRtpReceiver__remote_bitrate_estimator  # type: ignore[attr-defined]
        rtcp_ssrc = self._RTCRtpReceiver__rtcp_ssrc  # type: ignore[attr-defined]
        if estimator is not None and packet.extensions.abs_send_time is not None:
            remb = estimator.add(
                abs_send_time=packet.extensions.abs_send_time,
                arrival_time_ms=arrival_time_ms,
                payload_size=len(packet.payload) + packet.padding_size,
                ssrc=packet.ssrc,
            )
            if rtcp_ssrc is not None and remb is not None:
                await self._send_rtcp(
                    RtcpPsfbPacket(
                        fmt=RTCP_PSFB_APP,
                        ssrc=rtcp_ssrc,
                        media_ssrc=0,
                        fci=pack_remb_fci(*remb),
                    )
                )

        codecs = self._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
        codec = codecs.get(packet.payload_type)
        if codec is None:
            return

        streams = self._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
        stream = streams.get(packet.ssrc)
        if stream is None:
            stream = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stream.add(packet)

        if is_rtx(codec):
            rtx_ssrc = self._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
            original_ssrc = rtx_ssrc.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original_ssrc is None or len(packet.payload) < 2 or apt not in codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original_ssrc)

        nack = self._RTCRtpReceiver__nack_generator  # type: ignore[attr-defined]
        if nack is not None and nack.add(packet):
            await self._send_rtcp_nack(packet.ssrc, sorted(nack.missing))

        if not packet.payload:
            # Padding-only packets (bandwidth probes) carry no media.
            return
        up = self.up
        if up is None:
            self.dropped_no_track += 1
            return
        up.forward(packet)

    def request_keyframe(self) -> None:
        """Send a picture loss indication (PLI) to the publisher."""
        for ssrc in list(self._RTCRtpReceiver__remote_streams):  # type: ignore[attr-defined]
            if ssrc in self._RTCRtpReceiver__rtx_ssrc:  # type: ignore[attr-defined]
                continue
            asyncio.ensure_future(self._send_rtcp_pli(ssrc))
