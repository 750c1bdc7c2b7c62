"""The two peer connections of one participant: `up` (the participant
publishes, it offers) and `down` (the hub sends what it subscribes to, the hub
offers). See docs/protocol.md for why the two directions are kept apart."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import CODECS
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver
from aiortc.sdp import candidate_from_sdp

from hub.errors import ProtocolError
from media.codecs import ensure_h264_profile
from media.downtrack import DownTrack, ForwardingSender
from media.ice import rtc_configuration
from media.upreceiver import ForwardingReceiver
from media.uptrack import UpTrack

logger = logging.getLogger(__name__)


# Every peer connection the hub made that is still referenced, for the stats
# (a leak shows as a number that keeps growing after people leave).
LIVE_CONNECTIONS: weakref.WeakSet = weakref.WeakSet()


@dataclass
class MediaSettings:
    max_down_backlog_bytes: int = 262144
    keyframe_request_interval: float = 0.5
    nack_history: int = 512


@dataclass
class PublishResult:
    answer: str
    added: list[tuple[str, UpTrack]]
    ended: list[UpTrack]


def _capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


def _same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    if a.mimeType.lower() != b.mimeType.lower() or a.clockRate != b.clockRate:
        return False
    if a.mimeType.lower() == "video/h264":
        keys = ("profile-level-id", "packetization-mode")
        return all(
            str(a.parameters.get(k, "")).lower() == str(b.parameters.get(k, "")).lower()
            for k in keys
        )
    return True


def down_codec_preferences(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """Return the codec list for a down transceiver carrying `codec`: exactly
    the up track's codec (the relay cannot convert) and its RTX companion."""
    kind = codec.mimeType.split("/")[0].lower()
    if codec.mimeType.lower() == "video/h264":
        profile = str(codec.parameters.get("profile-level-id", ""))
        if profile:
            ensure_h264_profile(profile)
    local = None
    for candidate in CODECS[kind]:
        if _same_codec(candidate, codec):
            local = candidate
            break
    if local is None:
        raise ValueError(
            f"codec {codec.mimeType} {dict(codec.parameters)} cannot be forwarded: "
            "the hub does not offer it on down connections"
        )
    preferences = [_capability(local)]
    for candidate in CODECS[kind]:
        if (
            candidate.mimeType.lower() == f"{kind}/rtx"
            and candidate.parameters.get("apt") == local.payloadType
        ):
            preferences.append(_capability(candidate))
    return preferences


CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")


def _check_candidate(parsed, line: str) -> None:
    """Reject a candidate whose fields aioice would trip over later."""
    problem = None
    if parsed.protocol.lower() not in ("udp", "tcp"):
        problem = f"transport {parsed.protocol!r} is not udp or tcp"
    elif not 0 < parsed.port < 65536:
        problem = f"port {parsed.port} is out of range"
    elif not 0 < parsed.component < 257:
        problem = f"component {parsed.component} is out of range"
    elif parsed.type not in CANDIDATE_TYPES:
        problem = f"type {parsed.type!r} is not one of {', '.join(CANDIDATE_TYPES)}"
    else:
        try:
            ipaddress.ip_address(parsed.ip)
        except ValueError:
            if not parsed.ip.endswith(".local"):
                problem = f"address {parsed.ip[:40]!r} is not an IP address"
    if problem is not None:
        raise ProtocolError(f"ICE candidate {line[:60]!r} is invalid: {problem}")


class PeerMedia:
    """Media state of one participant, driven by the signaling layer."""

    def __init__(
        self,
        peer_id: str,
        room_id: str,
        ice_servers: list,
        settings: MediaSettings,
        new_track_id: Callable[[], str],
        on_failed: Callable[[str], None],
    ) -> None:
        self.peer_id = peer_id
        self.room_id = room_id
        self.settings = settings
        self._ice_servers = ice_servers
        self._new_track_id = new_track_id
        self._on_failed = on_failed
        self.up_pc: RTCPeerConnection | None = None
        self.down_pc: RTCPeerConnection | None = None
        # up tracks by mid of the up connection
        self.up_tracks: dict[str, UpTrack] = {}
        # down transceivers by up track id
        self.down: dict[str, tuple[RTCRtpTransceiver, DownTrack]] = {}
        self._down_pending: list[RTCRtpTransceiver] = []
        self.awaiting_answer = False
        self.closed = False
        self._background: set[asyncio.Task] = set()

    def _log(self) -> str:
        return f"room={self.room_id} peer={self.peer_id}"

    def _make_pc(self, name: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers))
        LIVE_CONNECTIONS.add(pc)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            logger.info("%s pc=%s connection %s", self._log(), name, pc.connectionState)
            if pc.connectionState == "failed" and not self.closed:
                self._on_failed(name)

        return pc

    # --- up ---------------------------------------------------------------

    async def publish(self, sdp: str, sources: dict[str, str]) -> PublishResult:
        """Apply the participant's offer on the up connection and return the
        hub's answer with the up tracks it started and ended."""
        if self.up_pc is None:
            self.up_pc = self._make_pc("up")
        pc = self.up_pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            raise ProtocolError(
                f"the publish offer could not be applied: {exc or type(exc).__name__}",
                code="bad-sdp",
            ) from None

        added: list[tuple[str, UpTrack]] = []
        active_mids = set()
        for transceiver in pc.getTransceivers():
            receiver = transceiver.receiver
            if not isinstance(receiver, ForwardingReceiver):
                ForwardingReceiver.adopt(receiver)
            mid = transceiver.mid
            # The offer's direction as seen from the hub. A section the client
            # sends on is "recvonly" here, and "inactive" or "sendonly" means
            # the client stopped sending on it.
            receiving = transceiver._offerDirection in ("recvonly", "sendrecv")
            if not receiving or mid is None:
                continue
            active_mids.add(mid)
            if mid in self.up_tracks:
                continue
            codecs = [c for c in transceiver._codecs if not c.mimeType.endswith("/rtx")]
            if not codecs:
                continue
            kind = transceiver.kind
            source = sources.get(mid) or ("camera" if kind == "video" else "microphone")
            track_id = self._new_track_id()
            fwd = receiver
            up = UpTrack(
                track_id,
                kind,
                codecs[0],
                source,
                label=source,
                request_keyframe=fwd.request_keyframe,  # type: ignore[attr-defined]
                owner=self.peer_id,
                keyframe_request_interval=self.settings.keyframe_request_interval,
                nack_history=self.settings.nack_history,
            )
            fwd.bind(up)  # type: ignore[attr-defined]
            self.up_tracks[mid] = up
            added.append((mid, up))
            logger.info(
                "%s track=%s published: %s %s (mid %s)",
                self._log(),
                track_id,
                source,
                codecs[0].mimeType,
                mid,
            )

        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)

        # A section the offer no longer sends on ends its track. Sources of a
        # still-active section may be relabelled by a later offer.
        for mid, up in list(self.up_tracks.items()):
            if mid in sources and not up.ended and sources[mid] != up.source:
                up.source = up.label = sources[mid]
        ended = []
        for mid in [m for m in self.up_tracks if m not in active_mids]:
            up = self.up_tracks.pop(mid)
            ended.append(up)
        return PublishResult(pc.localDescription.sdp, added, ended)

    async def add_candidate(self, pc_name: str, candidate: dict | None) -> None:
        pc = self.up_pc if pc_name == "up" else self.down_pc
        if pc is None or pc.remoteDescription is None:
            raise ProtocolError(
                f"ICE candidate for the {pc_name!r} connection before its "
                "description was exchanged; send 'publish' (up) or wait for the "
                "hub's 'offer' (down) first",
                code="out-of-order",
            )
        if candidate is None:
            await pc.addIceCandidate(None)
            return
        line = candidate["candidate"]
        if line.startswith("candidate:"):
            line = line[len("candidate:") :]
        if not line:
            return
        try:
            parsed = candidate_from_sdp(line)
        except (ValueError, IndexError, AssertionError) as exc:
            raise ProtocolError(
                f"ICE candidate {candidate['candidate'][:60]!r} is invalid: "
                f"{exc or 'not of the form foundation component transport priority '}"
                f"{'' if exc else 'address port typ type'}"
            ) from None
        _check_candidate(parsed, candidate["candidate"])
        parsed.sdpMid = candidate["sdpMid"]
        parsed.sdpMLineIndex = candidate["sdpMLineIndex"]
        if parsed.sdpMid is None and parsed.sdpMLineIndex is None:
            parsed.sdpMLineIndex = 0
        try:
            await pc.addIceCandidate(parsed)
        except (ValueError, AssertionError, TypeError) as exc:
            # aiortc checks some fields with assert; none of it is the hub's
            # fault, so the client gets a protocol error, not "internal".
            raise ProtocolError(
                f"ICE candidate {candidate['candidate'][:60]!r} was not accepted: "
                f"{exc or type(exc).__name__}"
            ) from None

    # --- down -------------------------------------------------------------

    def subscribe(self, up: UpTrack) -> bool:
        """Add a down transceiver for `up`; the change is sent with the next
        offer. Returns False if already subscribed."""
        if up.id in self.down or self.closed or up.ended:
            return False
        if self.down_pc is None:
            self.down_pc = self._make_pc("down")
        try:
            preferences = down_codec_preferences(up.codec)
        except ValueError as exc:
            logger.warning("%s track=%s not forwarded: %s", self._log(), up.id, exc)
            return False
        transceiver = self.down_pc.addTransceiver(up.kind, direction="sendonly")
        # Set directly: setCodecPreferences rejects H.264 profiles that aiortc
        # itself would not encode, and the relay never encodes.
        transceiver._preferred_codecs = preferences
        sender = ForwardingSender.adopt(transceiver.sender)
        # The publisher's id as stream id groups its audio and video into one
        # MediaStream in the browser, which keeps them in sync.
        sender._stream_id = up.owner or up.id
        sender._track_id = up.id
        down = DownTrack(up, self.peer_id, sender, self.settings.max_down_backlog_bytes)
        sender.bind(down)
        up.add_down_track(down)
        self.down[up.id] = (transceiver, down)
        return True

    def unsubscribe(self, track_id: str) -> bool:
        entry = self.down.pop(track_id, None)
        if entry is None:
            return False
        transceiver, down = entry
        down.close()
        down.sender.down = None
        transceiver.direction = "inactive"
        # aiortc 1.16 keeps writing the msid of a retired section into later
        # offers, and Chrome rejects an offer that repeats it for a new
        # section of the same track ("Duplicate a=msid lines detected"), as
        # when a side room ends. The retired sender gets an id of its own.
        down.sender._track_id = f"{track_id}-retired-{uuid.uuid4().hex[:8]}"
        # End the sender's RTP and RTCP tasks (it says BYE to the subscriber);
        # the inactive media section stays in the SDP, as aiortc has no way
        # to recycle it.
        task = asyncio.ensure_future(down.sender.stop())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return True

    async def make_offer(self) -> tuple[str, list[dict]] | None:
        """Create the next offer of the down connection, or None when there is
        nothing to offer. Returns the SDP and the mid of each active track."""
        pc = self.down_pc
        if pc is None:
            return None
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)
        self.awaiting_answer = True
        mapping = []
        for transceiver in pc.getTransceivers():
            for track_id, (t, down) in self.down.items():
                if t is transceiver:
                    mapping.append(
                        {
                            "mid": transceiver.mid,
                            "track": track_id,
                            "peer": down.up.owner,
                            "kind": down.up.kind,
                            "source": down.up.source,
                        }
                    )
        return pc.localDescription.sdp, mapping

    async def apply_answer(self, sdp: str) -> None:
        pc = self.down_pc
        if pc is None or not self.awaiting_answer:
            raise ProtocolError(
                "an 'answer' arrived but the hub has no offer outstanding; answer "
                "only the hub's latest 'offer'",
                code="out-of-order",
            )
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:
            raise ProtocolError(
                f"the answer could not be applied: {exc or type(exc).__name__}",
                code="bad-sdp",
            ) from None
        self.awaiting_answer = False

    # --- lifecycle --------------------------------------------------------

    def end_up_tracks(self) -> list[UpTrack]:
        ended = list(self.up_tracks.values())
        self.up_tracks.clear()
        return ended

    async def close(self) -> None:
        """Close both connections and release every down track. The caller
        ends the up tracks (they belong to the room)."""
        if self.closed:
            return
        self.closed = True
        for track_id in list(self.down):
            self.unsubscribe(track_id)
        for pc in (self.up_pc, self.down_pc):
            if pc is not None:
                try:
                    await asyncio.wait_for(pc.close(), timeout=5)
                except Exception:
                    logger.exception("%s closing a peer connection failed", self._log())
        self.up_pc = self.down_pc = None
