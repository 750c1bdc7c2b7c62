"""H.264 profiles on down connections: each track is offered with its
stream's real profile-level-id, and the subscriber's answer is accepted even
where aiortc's own matching would pair it with another level."""

from __future__ import annotations

import re

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media import codecs, ice
from media.codecs import ensure_h264_profile
from media.downtrack import ForwardingSender
from media.peer import down_codec_preferences


def _h264(profile_level_id: str) -> RTCRtpCodecParameters:
    return RTCRtpCodecParameters(
        mimeType="video/H264",
        clockRate=90000,
        payloadType=96,
        parameters={
            "level-asymmetry-allowed": "1",
            "packetization-mode": "1",
            "profile-level-id": profile_level_id,
        },
    )


async def _negotiate(profiles: list[str]) -> list[str]:
    """Offer one H.264 track per profile from a hub-side connection, answer
    from an aiortc subscriber, and return the profile each sender ends with."""
    codecs.install()
    hub = RTCPeerConnection(ice.rtc_configuration([]))
    subscriber = RTCPeerConnection(ice.rtc_configuration([]))
    transceivers = []
    for profile in profiles:
        transceiver = hub.addTransceiver("video", direction="sendonly")
        transceiver._preferred_codecs = down_codec_preferences(_h264(profile))
        ForwardingSender.adopt(transceiver.sender)
        transceivers.append(transceiver)
    try:
        await hub.setLocalDescription(await hub.createOffer())
        offer = hub.localDescription.sdp
        for profile in re.findall(r"profile-level-id=([0-9a-fA-F]{6})", offer):
            ensure_h264_profile(profile)
        await subscriber.setRemoteDescription(
            RTCSessionDescription(sdp=offer, type="offer")
        )
        await subscriber.setLocalDescription(await subscriber.createAnswer())
        await hub.setRemoteDescription(subscriber.localDescription)
        return [
            str(t._codecs[0].parameters["profile-level-id"]).lower()
            for t in transceivers
        ]
    finally:
        await hub.close()
        await subscriber.close()


async def test_constrained_baseline_level_30_negotiates():
    assert await _negotiate(["42c01e"]) == ["42c01e"]


async def test_two_levels_of_main_on_one_connection():
    assert await _negotiate(["4d401e", "4d401f"]) == ["4d401e", "4d401f"]


async def test_offer_states_the_stream_profile():
    codecs.install()
    hub = RTCPeerConnection(ice.rtc_configuration([]))
    transceiver = hub.addTransceiver("video", direction="sendonly")
    transceiver._preferred_codecs = down_codec_preferences(_h264("640028"))
    try:
        await hub.setLocalDescription(await hub.createOffer())
        profiles = re.findall(
            r"profile-level-id=([0-9a-fA-F]{6})", hub.localDescription.sdp
        )
        assert profiles == ["640028"]
    finally:
        await hub.close()
