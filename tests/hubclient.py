"""An aiortc client of the hub's signaling protocol, for tests and benchmarks.

It publishes aiortc tracks on the up connection and answers the hub's offers
on the down connection, like the browser client does."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import websockets
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
)

from media import ice
from media.codecs import ensure_h264_profile

# The hub's tests run on loopback; aioice leaves 127.0.0.1 out by default.
ice.install(ice.IceSettings(host_addresses=["127.0.0.1"]))


@dataclass
class ReceivedTrack:
    mid: str
    track_id: str
    peer: str
    kind: str
    source: str
    track: MediaStreamTrack


@dataclass
class HubClient:
    ws_url: str
    room: str
    name: str
    token: str | None = None
    subscribe: str = "all"
    messages: list[dict] = field(default_factory=list)
    received: dict[str, ReceivedTrack] = field(default_factory=dict)
    errors: list[dict] = field(default_factory=list)
    on_track: Callable[[ReceivedTrack], None] | None = None

    def __post_init__(self) -> None:
        self.ws = None
        self.peer_id: str | None = None
        self.up_pc: RTCPeerConnection | None = None
        self.down_pc: RTCPeerConnection | None = None
        self._reader: asyncio.Task | None = None
        self._waiters: list[tuple[Callable[[dict], bool], asyncio.Future]] = []
        self._down_mapping: dict[str, dict] = {}
        self.tracks: list[dict] = []
        self.peers: dict[str, dict] = {}

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 10):
        """Wait for the next message (from now on) that matches."""
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        return asyncio.wait_for(future, timeout)

    async def join(self) -> dict:
        self.ws = await websockets.connect(self.ws_url, max_size=2**22)
        self._reader = asyncio.ensure_future(self._read())
        joined = self.wait_for(lambda m: m["type"] in ("joined", "error"))
        message = {"type": "join", "version": 1, "room": self.room, "name": self.name}
        message["subscribe"] = self.subscribe
        if self.token is not None:
            message["token"] = self.token
        await self.send(message)
        reply = await joined
        if reply["type"] == "joined":
            self.peer_id = reply["peer"]
            self.tracks = reply["tracks"]
            for peer in reply["peers"]:
                self.peers[peer["id"]] = peer
        return reply

    async def publish(self, tracks: list[tuple[MediaStreamTrack, str]]) -> None:
        """Publish (track, source) pairs on the up connection."""
        if self.up_pc is None:
            self.up_pc = RTCPeerConnection(ice.rtc_configuration([]))
        sources = {}
        transceivers = []
        for track, source in tracks:
            transceivers.append(
                (self.up_pc.addTransceiver(track, direction="sendonly"), source)
            )
        offer = await self.up_pc.createOffer()
        await self.up_pc.setLocalDescription(offer)
        for transceiver, source in transceivers:
            sources[transceiver.mid] = source
        answered = self.wait_for(
            lambda m: (
                (m["type"] == "answer" and m.get("pc") == "up") or m["type"] == "error"
            )
        )
        await self.send(
            {
                "type": "publish",
                "sdp": self.up_pc.localDescription.sdp,
                "sources": sources,
            }
        )
        reply = await answered
        if reply["type"] == "error":
            raise RuntimeError(f"publish failed: {reply}")
        await self.up_pc.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )

    async def _on_offer(self, message: dict) -> None:
        if self.down_pc is None:
            self.down_pc = RTCPeerConnection(ice.rtc_configuration([]))

            @self.down_pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                for transceiver in self.down_pc.getTransceivers():
                    if transceiver.receiver.track is track:
                        info = self._down_mapping.get(transceiver.mid)
                        if info is None:
                            return
                        received = ReceivedTrack(
                            transceiver.mid,
                            info["track"],
                            info["peer"],
                            info["kind"],
                            info["source"],
                            track,
                        )
                        self.received[info["track"]] = received
                        if self.on_track is not None:
                            self.on_track(received)

        for entry in message["tracks"]:
            self._down_mapping[entry["mid"]] = entry
        # aiortc accepts only the H.264 profiles in its codec list; a camera
        # forwarded by the hub may send Main or High (FFmpeg decodes them).
        for profile in re.findall(r"profile-level-id=([0-9a-fA-F]{6})", message["sdp"]):
            ensure_h264_profile(profile)
        await self.down_pc.setRemoteDescription(
            RTCSessionDescription(sdp=message["sdp"], type="offer")
        )
        answer = await self.down_pc.createAnswer()
        await self.down_pc.setLocalDescription(answer)
        await self.send(
            {"type": "answer", "pc": "down", "sdp": self.down_pc.localDescription.sdp}
        )

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                self.messages.append(message)
                kind = message.get("type")
                if kind == "error":
                    self.errors.append(message)
                elif kind == "offer":
                    await self._on_offer(message)
                elif kind == "tracks":
                    self.tracks = message["tracks"]
                elif kind == "peer-joined":
                    self.peers[message["peer"]["id"]] = message["peer"]
                elif kind == "peer-left":
                    self.peers.pop(message["peer"], None)
                for waiter in list(self._waiters):
                    predicate, future = waiter
                    if not future.done() and predicate(message):
                        future.set_result(message)
                        self._waiters.remove(waiter)
        except websockets.ConnectionClosed:
            pass

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
        for pc in (self.up_pc, self.down_pc):
            if pc is not None:
                await pc.close()
