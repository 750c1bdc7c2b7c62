"""Helpers for the session tests: a hub with tokens and the org tree, tokens
per role, request/reply over a HubClient, and publishing that returns the
hub's reply instead of raising."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from hub.auth import mint_token
from media import ice
from tests.hubclient import HubClient
from tests.hubproc import scaled

ROOT = Path(__file__).resolve().parent.parent
ORG_FILE = ROOT / "configs" / "org-puer.toml"
SECRET = "session-test-secret-0123456789-abcdefghij"

# Rooms of configs/org-puer.toml, one of each session kind.
JOINT_ROOM = "puer-joint"
MEDIATION_ROOM = "puer-mediation"
LECTURE_ROOM = "puer-training"
UNIT = "puer.simao"

# tests/hubproc.py already points org.file at ORG_FILE.
AUTH_CONFIG = f"""
[auth]
secret = "{SECRET}"
"""

_request_ids = itertools.count(1)
_users = itertools.count(1)


def token_for(
    role: str,
    room: str | None = None,
    *,
    name: str | None = None,
    user: str | None = None,
    unit: str | None = UNIT,
) -> str:
    """Mint a token for a new user of `role`, limited to `room` if given."""
    user = user or f"{role}-{next(_users)}"
    if role == "party":
        unit = None
    return mint_token(
        SECRET,
        user,
        unit,
        role,
        room=room,
        name=name or user,
        ttl=timedelta(hours=1),
    )


async def join_as(
    hub,
    role: str | None,
    room: str,
    name: str | None = None,
    *,
    subscribe: str = "all",
    token: str | None = None,
    kind: str | None = None,
    expect: str = "joined",
) -> HubClient:
    """Join `room` as a new user of `role` (no token if role is None). `kind`
    is sent in the join, to open a room outside the org tree."""
    if token is None and role is not None:
        token = token_for(role, room, name=name)
    client = HubClient(
        hub.ws_url, room, name or role or "guest", token=token, subscribe=subscribe
    )
    if kind is None:
        reply = await client.join()
    else:
        reply = await join_with(client, {"kind": kind, "subscribe": subscribe})
    client.joined = reply  # type: ignore[attr-defined]
    if reply["type"] != expect:
        await client.close()
        raise AssertionError(f"expected {expect!r} joining {room} as {role}: {reply}")
    return client


async def join_with(client: HubClient, extra: dict) -> dict:
    """Join with extra fields in the join message (such as `kind`) and return
    the reply, `joined` or `error`."""
    client.ws = await websockets.connect(client.ws_url)
    client._reader = asyncio.ensure_future(client._read())
    reply = client.wait_for(lambda m: m["type"] in ("joined", "error"))
    message = {"type": "join", "version": 1, "room": client.room, "name": client.name}
    if client.token:
        message["token"] = client.token
    await client.send({**message, **extra})
    result = await reply
    if result["type"] == "joined":
        client.peer_id = result["peer"]
        for peer in result["peers"]:
            client.peers[peer["id"]] = peer
    return result


async def request(client: HubClient, message: dict, timeout: float = 10) -> dict:
    """Send `message` with a fresh id and return the reply carrying that id."""
    request_id = f"r{next(_request_ids)}"
    reply = client.wait_for(lambda m: m.get("id") == request_id, scaled(timeout))
    await client.send({**message, "id": request_id})
    return await reply


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def next_message(client: HubClient, kind: str, timeout: float = 10):
    """Start waiting for the next message of type `kind`; await the result.

    The wait starts at the call, so call it before the action that causes
    the message."""
    return client.wait_for(lambda m: m["type"] == kind, scaled(timeout))


def received_of(client: HubClient, kind: str) -> list[dict]:
    return [m for m in client.messages if m["type"] == kind]


async def publish(
    client: HubClient, tracks: list[tuple[MediaStreamTrack, str]]
) -> dict:
    """Publish (track, source) pairs and return the hub's reply (`answer`
    or `error`), applying an answer to the up connection."""
    if client.up_pc is None:
        client.up_pc = RTCPeerConnection(ice.rtc_configuration([]))
    sources = getattr(client, "sources", {})
    added = [
        (client.up_pc.addTransceiver(track, direction="sendonly"), source)
        for track, source in tracks
    ]
    offer = await client.up_pc.createOffer()
    await client.up_pc.setLocalDescription(offer)
    for transceiver, source in added:
        sources[transceiver.mid] = source
    client.sources = sources  # type: ignore[attr-defined]
    return await _send_offer(client)


async def publish_again(client: HubClient) -> dict:
    """Send a new offer for the up connection as it is (after the floor was
    given, a client offers its sections again)."""
    offer = await client.up_pc.createOffer()
    await client.up_pc.setLocalDescription(offer)
    return await _send_offer(client)


async def _send_offer(client: HubClient) -> dict:
    reply = await request(
        client,
        {
            "type": "publish",
            "sdp": client.up_pc.localDescription.sdp,
            "sources": client.sources,  # type: ignore[attr-defined]
        },
    )
    if reply["type"] == "answer":
        await client.up_pc.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )
    return reply


def offered_tracks(client: HubClient) -> set[str]:
    """Return the track ids of the latest down offer the client answered."""
    offers = received_of(client, "offer")
    if not offers:
        return set()
    return {entry["track"] for entry in offers[-1]["tracks"]}


def owners_offered(client: HubClient) -> set[str]:
    offers = received_of(client, "offer")
    if not offers:
        return set()
    return {entry["peer"] for entry in offers[-1]["tracks"]}


async def close_all(*clients: HubClient) -> None:
    for client in clients:
        try:
            await client.close()
        except Exception:  # noqa: BLE001 - a closed socket is fine here
            pass
