"""Codecs the hub offers on down connections beyond aiortc's own list.

aiortc offers H.264 only in Constrained Baseline (42001f, 42e01f), the
profiles its encoder makes. The relay never encodes, so it can forward any
profile a browser decodes: cameras commonly send Main (4d) or High (64)."""

from __future__ import annotations

import copy
import logging
import re

import aiortc.rtcpeerconnection
from aiortc import sdp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
)

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


def _h264_profile(parameters: dict) -> tuple[object, int] | None:
    try:
        profile = sdp.parse_h264_profile_level_id(
            str(parameters.get("profile-level-id", "42e01f"))
        )[0]
    except ValueError:
        return None
    return profile, int(parameters.get("packetization-mode", "0"))


def filter_preferred_codecs(
    codecs: list[RTCRtpCodecParameters], preferred: list[RTCRtpCodecCapability]
) -> list[RTCRtpCodecParameters]:
    """aiortc's codec preference filter, matching H.264 by profile and
    packetization mode instead of every parameter.

    aiortc pairs a browser's H.264 answer with the first local entry of the
    same profile, whatever its level, and then drops it for not equalling the
    preference exactly. A camera's sub stream at level 3.0 (4d401e) next to
    its main stream at 3.1 (4d401f), or a Constrained Baseline profile other
    than aiortc's own, then failed to negotiate. The match keeps the
    preferred parameters, so the SDP states the stream's real profile and
    level."""
    if not preferred:
        return codecs
    rtx_codecs = [c for c in codecs if is_rtx(c)]
    rtx_enabled = any(is_rtx(p) for p in preferred)
    filtered: list[RTCRtpCodecParameters] = []
    for pref in preferred:
        if is_rtx(pref):
            continue
        for codec in codecs:
            if is_rtx(codec) or codec.mimeType.lower() != pref.mimeType.lower():
                continue
            if pref.mimeType.lower() == "video/h264":
                expected = _h264_profile(pref.parameters)
                if expected is None or _h264_profile(codec.parameters) != expected:
                    continue
                codec = copy.deepcopy(codec)
                codec.parameters = dict(pref.parameters)
            elif codec.parameters != pref.parameters:
                continue
            filtered.append(codec)
            if rtx_enabled:
                for rtx in rtx_codecs:
                    if rtx.parameters.get("apt") == codec.payloadType:
                        filtered.append(rtx)
                        break
            break
    return filtered


def install() -> None:
    """Use the H.264-tolerant preference filter in aiortc's peer connections."""
    aiortc.rtcpeerconnection.filter_preferred_codecs = filter_preferred_codecs
