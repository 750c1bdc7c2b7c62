"""Up tracks: media arriving at the hub from one publisher (a browser, an
aiortc client or a camera feed), fanned out to its down tracks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiortc import clock
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap, RtpPacket

from media.rtp import keyframe_detector

if TYPE_CHECKING:
    from media.downtrack import DownTrack

logger = logging.getLogger(__name__)

# Largest number of packets kept to start a late viewer of a camera at once.
# A longer group of pictures is not cached, so its viewer waits for the next
# keyframe.
MAX_GOP_PACKETS = 4000


def _down_extensions_map(kind: str) -> HeaderExtensionsMap:
    """Return the header-extension map every down track uses.

    The hub makes every offer on down connections, with aiortc's extension
    ids, so one map serves all subscribers of a kind."""
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpSendParameters(headerExtensions=HEADER_EXTENSIONS[kind]))
    return ext_map


DOWN_EXTENSIONS = {
    "audio": _down_extensions_map("audio"),
    "video": _down_extensions_map("video"),
}


@dataclass
class SenderClock:
    """The publisher's mapping of RTP time to wall-clock (NTP) time, from its
    last sender report, so down tracks can send reports that keep lip sync."""

    ntp_timestamp: int
    rtp_timestamp: int
    received_at: float


class UpTrack:
    """One published track. `forward` is called for each RTP packet, in
    order of arrival, and writes it to every down track at once.

    The packet is serialized once with the down connections' extension ids
    (without the MID extension: down connections signal SSRCs in their SDP,
    which is enough to demultiplex, RFC 8843 section 9.2) and each down track
    only patches payload type, sequence number and SSRC."""

    def __init__(
        self,
        track_id: str,
        kind: str,
        codec: RTCRtpCodecParameters,
        source: str,
        label: str,
        request_keyframe: Callable[[], None],
        cache_gop: bool = False,
        *,
        owner: str = "",
        keyframe_request_interval: float = 0.5,
        nack_history: int = 512,
    ) -> None:
        if kind not in ("audio", "video"):
            raise ValueError(f"track kind must be 'audio' or 'video', got {kind!r}")
        self.id = track_id
        self.kind = kind
        self.codec = codec
        self.source = source
        self.label = label
        self.owner = owner
        self.muted = False
        self.ended = False
        self.cache_gop = cache_gop
        self._request_keyframe = request_keyframe
        self._keyframe_interval = keyframe_request_interval
        self._last_keyframe_request = 0.0
        self._pending_keyframe_request = False
        self._is_keyframe_start = keyframe_detector(codec.mimeType)
        self._ext_map = DOWN_EXTENSIONS[kind]
        self._frame_boundary = True
        self.down_tracks: tuple[DownTrack, ...] = ()
        self.on_ended: list[Callable[[UpTrack], None]] = []

        # NACK history of serialized packets, indexed by sequence number.
        self.history_size = nack_history
        self._history: list[tuple[int, bytes] | None] = [None] * nack_history
        self._gop: list[tuple[int, bytes]] = []

        self.sender_clock: SenderClock | None = None
        self.last_rtp_timestamp: int | None = None
        self.last_packet_time = 0.0

        # counters
        self.packets = 0
        self.bytes = 0
        self.keyframes = 0
        self.keyframe_requests_sent = 0
        self.keyframe_requests_suppressed = 0
        self.last_keyframe_time: float | None = None

    def __repr__(self) -> str:
        return f"UpTrack({self.id} {self.kind} {self.codec.mimeType} {self.source})"

    # --- subscribers ------------------------------------------------------

    def add_down_track(self, down: DownTrack) -> None:
        self.down_tracks = (*self.down_tracks, down)

    def cached_pictures(self) -> list[tuple[int, bytes]]:
        """Return the packets since the last keyframe (cameras only), oldest
        first, or an empty list."""
        return list(self._gop) if self.cache_gop else []

    def remove_down_track(self, down: DownTrack) -> None:
        self.down_tracks = tuple(d for d in self.down_tracks if d is not down)

    # --- media path -------------------------------------------------------

    def forward(self, packet: RtpPacket) -> None:
        """Serialize `packet` once and write it to every down track."""
        if self.ended:
            return
        now = time.monotonic()
        payload = packet.payload
        keyframe_start = False
        if self._is_keyframe_start is not None:
            keyframe_start = self._frame_boundary and self._is_keyframe_start(payload)
            self._frame_boundary = bool(packet.marker)
            if keyframe_start:
                self.keyframes += 1
                self.last_keyframe_time = now
                if self.cache_gop:
                    self._gop = []

        extensions = HeaderExtensions()
        if self.kind == "video":
            extensions.abs_send_time = (clock.current_ntp_time() >> 14) & 0x00FFFFFF
        else:
            extensions.audio_level = packet.extensions.audio_level
        out = RtpPacket(
            payload_type=packet.payload_type,
            marker=packet.marker,
            sequence_number=packet.sequence_number,
            timestamp=packet.timestamp,
            ssrc=packet.ssrc,
            payload=payload,
        )
        out.extensions = extensions
        data = out.serialize(self._ext_map)

        seq = packet.sequence_number
        self._history[seq % self.history_size] = (seq, data)
        if self.cache_gop and (keyframe_start or self._gop):
            if len(self._gop) < MAX_GOP_PACKETS:
                self._gop.append((seq, data))
            else:
                self._gop = []

        self.packets += 1
        self.bytes += len(payload)
        self.last_rtp_timestamp = packet.timestamp
        self.last_packet_time = now

        for down in self.down_tracks:
            down.write(seq, data, keyframe_start)

        if self._pending_keyframe_request:
            self.request_keyframe()

    def lookup(self, seq: int) -> bytes | None:
        """Return the serialized packet with sequence number `seq` if it is
        still in the NACK history."""
        entry = self._history[seq % self.history_size]
        if entry is not None and entry[0] == seq:
            return entry[1]
        return None

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per interval. A
        request inside the interval is kept and sent with the first packet
        forwarded after the interval ends."""
        if self._is_keyframe_start is None or self.ended:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < self._keyframe_interval:
            if not self._pending_keyframe_request:
                self.keyframe_requests_suppressed += 1
            self._pending_keyframe_request = True
            return
        self._pending_keyframe_request = False
        self._last_keyframe_request = now
        self.keyframe_requests_sent += 1
        try:
            self._request_keyframe()
        except Exception:
            logger.exception("track=%s keyframe request to publisher failed", self.id)

    def update_sender_clock(self, ntp_timestamp: int, rtp_timestamp: int) -> None:
        self.sender_clock = SenderClock(ntp_timestamp, rtp_timestamp, time.time())

    def end(self) -> None:
        """End the track for every subscriber (the publisher left or stopped
        it). Idempotent."""
        if self.ended:
            return
        self.ended = True
        downs = self.down_tracks
        self.down_tracks = ()
        self._history = [None] * self.history_size
        self._gop = []
        for down in downs:
            down.up_ended()
        for callback in self.on_ended:
            try:
                callback(self)
            except Exception:
                logger.exception("track=%s ended callback failed", self.id)
        logger.info("track=%s owner=%s ended", self.id, self.owner)

    def stats(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "label": self.label,
            "codec": self.codec.mimeType,
            "packets": self.packets,
            "bytes": self.bytes,
            "keyframes": self.keyframes,
            "keyframe_requests_sent": self.keyframe_requests_sent,
            "keyframe_requests_suppressed": self.keyframe_requests_suppressed,
            "subscribers": len(self.down_tracks),
        }
