"""Bad input on the signaling socket: each mistake gets an error with a
stable code naming the problem, and the participant stays in its room."""

from __future__ import annotations

import json

import httpx
import pytest
from aiortc import RTCPeerConnection
from aiortc.mediastreams import VideoStreamTrack

from media import ice
from tests.hubclient import HubClient
from tests.hubproc import scaled


async def _error_for(client: HubClient, frame: str | bytes) -> dict:
    reply = client.wait_for(lambda m: m["type"] == "error", scaled(10))
    await client.send_raw(frame)
    return await reply


async def _offer_sdp() -> str:
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.mark.parametrize(
    ("frame", "code", "words"),
    [
        ("not json", "bad-json", "not valid JSON"),
        ("[1, 2]", "bad-json", "JSON object"),
        ('{"type": 7}', "bad-message", "'type'"),
        ('{"type": "dance"}', "unknown-type", "dance"),
        ('{"type": "answer", "pc": "down", "sdp": "v=0\\r\\n"}', "bad-sdp", "m="),
        ('{"type": "publish", "sdp": "hello"}', "bad-sdp", "v=0"),
        (
            '{"type": "mute", "source": "camera", "muted": "yes"}',
            "bad-message",
            "muted",
        ),
        ('{"type": "subscribe", "tracks": ["t-none"]}', "not-found", "t-none"),
        ('{"type": "ice", "pc": "up", "candidate": null}', "out-of-order", "publish"),
        (
            json.dumps({"type": "join", "room": "x", "name": "y"}),
            "already-joined",
            "already joined",
        ),
    ],
)
async def test_bad_message_gets_named_error(hub, frame, code, words):
    client = HubClient(hub.ws_url, "errors-1", "思茅区指挥室")
    await client.join()
    try:
        error = await _error_for(client, frame)
        assert error["code"] == code
        assert words in error["message"]
        pong = client.wait_for(lambda m: m["type"] == "pong", scaled(5))
        await client.send({"type": "ping"})
        await pong
    finally:
        await client.close()


async def test_oversized_frame_is_refused(hub):
    client = HubClient(hub.ws_url, "errors-2", "墨江县指挥室")
    await client.join()
    try:
        frame = json.dumps({"type": "ping", "pad": "x" * 70_000})
        error = await _error_for(client, frame)
        assert error["code"] == "too-large"
        assert "65536" in error["message"]
    finally:
        await client.close()


async def test_offer_without_fingerprint_is_refused(hub):
    client = HubClient(hub.ws_url, "errors-3", "西盟县指挥室")
    await client.join()
    try:
        sdp = "\r\n".join(
            line
            for line in (await _offer_sdp()).split("\r\n")
            if not line.startswith("a=fingerprint:")
        )
        error = await _error_for(
            client, json.dumps({"type": "publish", "sdp": sdp, "sources": {}})
        )
        assert error["code"] == "bad-sdp"
        assert "fingerprint" in error["message"]
        assert client.tracks == []
    finally:
        await client.close()


async def test_garbage_candidate_is_a_protocol_error(hub):
    client = HubClient(hub.ws_url, "errors-4", "孟连县指挥室")
    await client.join()
    try:
        await client.publish([(VideoStreamTrack(), "camera")])
        bad = {
            "type": "ice",
            "pc": "up",
            "candidate": {
                "candidate": "candidate:1 1 udp 2130706431 not-an-address 9 typ host",
                "sdpMid": "0",
                "sdpMLineIndex": 0,
            },
        }
        error = await _error_for(client, json.dumps(bad))
        assert error["code"] == "bad-message"
        assert "not-an-address" in error["message"]
    finally:
        await client.close()


async def test_leave_closes_with_normal_code(hub):
    client = HubClient(hub.ws_url, "errors-5", "江城县指挥室")
    await client.join()
    await client.send({"type": "leave"})
    await client.ws.wait_closed()
    assert client.ws.close_code == 1000
    await client.close()
    stats = httpx.get(f"{hub.url}/api/stats").json()
    assert all(r["id"] != "errors-5" for r in stats["rooms"])
