"""Codecs the hub offers on down connections beyond aiortc's own list.

aiortc offers H.264 only in Constrained Baseline (42001f, 42e01f), the
profiles its encoder makes. The relay never encodes, so it can forward any
profile a browser decodes: cameras commonly send Main (4d) or High (64)."""

from __future__ import annotations

import logging
import re

from aiortc.codecs import CODECS
from aiortc.rtcrtpparameters import RTCRtcpFeedback, RTCRtpCodecParameters

logger = logging.getLogger(__name__)

PROFILE_LEVEL_ID = re.compile(r"[0-9a-fA-F]{6}")


def _next_payload_types() -> tuple[int, int]:
    used = {c.payloadType for kind in CODECS.values() for c in kind}
    free = [pt for pt in range(96, 128) if pt not in used]
    if len(free) < 2:
        raise ValueError("no dynamic RTP payload types left for another H.264 profile")
    return free[0], free[1]


def ensure_h264_profile(profile_level_id: str) -> None:
    """Add H.264 with `profile_level_id` (and its RTX) to the codecs offered
    on down connections, once."""
    if not PROFILE_LEVEL_ID.fullmatch(profile_level_id):
        raise ValueError(
            f"profile-level-id {profile_level_id!r} is not six hex digits, "
            "such as '4d001f'"
        )
    profile_level_id = profile_level_id.lower()
    for codec in CODECS["video"]:
        if (
            codec.mimeType.lower() == "video/h264"
            and str(codec.parameters.get("profile-level-id", "")).lower()
            == profile_level_id
            and str(codec.parameters.get("packetization-mode", "")) == "1"
        ):
            return
    payload_type, rtx_type = _next_payload_types()
    CODECS["video"] += [
        RTCRtpCodecParameters(
            mimeType="video/H264",
            clockRate=90000,
            payloadType=payload_type,
            rtcpFeedback=[
                RTCRtcpFeedback(type="nack"),
                RTCRtcpFeedback(type="nack", parameter="pli"),
                RTCRtcpFeedback(type="goog-remb"),
            ],
            parameters={
                "level-asymmetry-allowed": "1",
                "packetization-mode": "1",
                "profile-level-id": profile_level_id,
            },
        ),
        RTCRtpCodecParameters(
            mimeType="video/rtx",
            clockRate=90000,
            payloadType=rtx_type,
            parameters={"apt": payload_type},
        ),
    ]
    logger.info(
        "H.264 profile-level-id %s offered on down connections (payload type %d)",
        profile_level_id,
        payload_type,
    )
