"""Signaling clients for the three relays under test.

Each client publishes one peer connection (the client offers) and subscribes
peer connections (the relay offers, the client answers), with the same two
calls, so the load generator does not depend on the relay:

- `publish(pc)`: `pc` already carries the video track.
- `subscribe(pc, index, before_answer)`: `before_answer()` runs after the
  relay's offer is applied and before the answer is made, so the caller can
  replace the new receivers' RTP handlers before any packet arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import websockets
from aiortc import RTCPeerConnection, RTCSessionDescription

logger = logging.getLogger(__name__)

# The Janus VideoRoom room and publisher id that the benchmark uses.
JANUS_ROOM = 1234
JANUS_FEED = 1
HUB_ROOM = "bench"
# Seconds to wait for any one signaling reply.
REPLY_TIMEOUT = 20.0


class SignalingError(RuntimeError):
    """A relay rejected a request or did not reply in time."""


async def _answer_offer(
    pc: RTCPeerConnection, sdp: str, before_answer: Callable[[], None]
) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
    before_answer()
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


class RelayClient:
    """Client of the MediaRelay baseline server in `relay_server.py`."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=REPLY_TIMEOUT, trust_env=False
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self._http.post(path, json=body)
        if response.status_code != 200:
            raise SignalingError(
                f"relay POST {path} failed with {response.status_code}: "
                f"{response.text[:200]}"
            )
        return response.json()

    async def publish(self, pc: RTCPeerConnection) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self._post("/publish", {"sdp": pc.localDescription.sdp})
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )

    async def subscribe(
        self, pc: RTCPeerConnection, index: int, before_answer: Callable[[], None]
    ) -> None:
        offer = await self._post("/subscribe", {"name": f"sub-{index}"})
        answer = await _answer_offer(pc, offer["sdp"], before_answer)
        await self._post("/answer", {"id": offer["id"], "sdp": answer})

    async def close(self) -> None:
        await self._http.aclose()


class JanusClient:
    """Client of the Janus HTTP API and its VideoRoom plugin.

    One Janus session per process; each peer connection gets its own plugin
    handle. Asynchronous plugin events arrive on one long-poll loop and are
    matched to their request by transaction id.
    """

    def __init__(self, base_url: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=REPLY_TIMEOUT + 40,
            trust_env=False,
            limits=httpx.Limits(max_connections=32),
        )
        self._transactions = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._session: int | None = None
        self._poller: asyncio.Task[None] | None = None
        self._closing = False
        self._session_lock = asyncio.Lock()

    def _transaction(self) -> str:
        return f"t{next(self._transactions)}"

    async def _request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": self._transaction()}
        response = await self._http.post(path, json=body)
        reply = response.json()
        if reply.get("janus") == "error":
            raise SignalingError(f"janus {body['janus']} failed: {reply['error']}")
        return reply

    async def _ensure_session(self) -> int:
        async with self._session_lock:
            if self._session is None:
                reply = await self._request("/janus", {"janus": "create"})
                self._session = reply["data"]["id"]
                self._poller = asyncio.create_task(self._poll())
            return self._session

    async def _poll(self) -> None:
        path = f"/janus/{self._session}"
        while True:
            try:
                response = await self._http.get(path, params={"maxev": 50})
                events = response.json()
            except (httpx.HTTPError, json.JSONDecodeError) as exc:
                if self._closing:
                    return
                logger.warning("janus session=%s poll failed: %s", self._session, exc)
                await asyncio.sleep(0.5)
                continue
            if isinstance(events, dict):
                events = [events]
            for event in events:
                future = self._pending.get(event.get("transaction", ""))
                if event.get("janus") == "event" and future and not future.done():
                    future.set_result(event)
                elif event.get("janus") == "hangup":
                    logger.warning(
                        "janus session=%s handle=%s hung up: %s",
                        self._session,
                        event.get("sender"),
                        event.get("reason"),
                    )

    async def _attach(self) -> int:
        session = await self._ensure_session()
        reply = await self._request(
            f"/janus/{session}",
            {"janus": "attach", "plugin": "janus.plugin.videoroom"},
        )
        return reply["data"]["id"]

    async def _message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        transaction = self._transaction()
        future: asyncio.Future[dict[str, Any]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[transaction] = future
        request: dict[str, Any] = {
            "janus": "message",
            "transaction": transaction,
            "body": body,
        }
        if jsep is not None:
            request["jsep"] = jsep
        try:
            response = await self._http.post(
                f"/janus/{self._session}/{handle}", json=request
            )
            reply = response.json()
            if reply.get("janus") == "error":
                raise SignalingError(
                    f"janus {body['request']} failed: {reply['error']}"
                )
            event = await asyncio.wait_for(future, REPLY_TIMEOUT)
        finally:
            self._pending.pop(transaction, None)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data:
            raise SignalingError(
                f"janus {body['request']} failed: {data['error']} "
                f"(code {data.get('error_code')})"
            )
        return event

    async def publish(self, pc: RTCPeerConnection) -> None:
        handle = await self._attach()
        await self._message(
            handle,
            {
                "request": "join",
                "ptype": "publisher",
                "room": JANUS_ROOM,
                "id": JANUS_FEED,
            },
        )
        await pc.setLocalDescription(await pc.createOffer())
        event = await self._message(
            handle,
            {"request": "publish"},
            {"type": "offer", "sdp": pc.localDescription.sdp, "trickle": False},
        )
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=event["jsep"]["sdp"], type="answer")
        )

    async def subscribe(
        self, pc: RTCPeerConnection, index: int, before_answer: Callable[[], None]
    ) -> None:
        handle = await self._attach()
        event = await self._message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": JANUS_ROOM,
                "streams": [{"feed": JANUS_FEED}],
            },
        )
        answer = await _answer_offer(pc, event["jsep"]["sdp"], before_answer)
        await self._message(
            handle,
            {"request": "start"},
            {"type": "answer", "sdp": answer, "trickle": False},
        )

    async def close(self) -> None:
        self._closing = True
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._session is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self._request(f"/janus/{self._session}", {"janus": "destroy"})
        await self._http.aclose()


class _HubConnection:
    """One WebSocket to the hub, as described in docs/protocol.md."""

    def __init__(self, socket: Any, name: str) -> None:
        self.socket = socket
        self.name = name
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())
        self._pinger: asyncio.Task[None] | None = None
        self._handler: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for frame in self.socket:
                await self.messages.put(json.loads(frame))

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def expect(self, kind: str, pc_name: str | None = None) -> dict[str, Any]:
        """Return the next message of type `kind`, skipping events."""
        while True:
            message = await asyncio.wait_for(self.messages.get(), REPLY_TIMEOUT)
            if message["type"] == "error":
                raise SignalingError(
                    f"hub rejected a request of peer {self.name}: "
                    f"{message.get('code')}: {message.get('message')}"
                )
            if message["type"] == kind and (
                pc_name is None or message.get("pc") == pc_name
            ):
                return message

    def keep_alive(self, pc: RTCPeerConnection | None) -> None:
        """Ping every 10 s and answer later offers on the `down` connection."""
        self._pinger = asyncio.create_task(self._ping())
        if pc is not None:
            self._handler = asyncio.create_task(self._renegotiate(pc))

    async def _ping(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(10)
                await self.send({"type": "ping"})

    async def _renegotiate(self, pc: RTCPeerConnection) -> None:
        while True:
            message = await self.messages.get()
            if message["type"] == "offer" and message.get("pc") == "down":
                answer = await _answer_offer(pc, message["sdp"], lambda: None)
                await self.send({"type": "answer", "pc": "down", "sdp": answer})
            elif message["type"] == "error":
                logger.warning(
                    "hub peer=%s error: %s: %s",
                    self.name,
                    message.get("code"),
                    message.get("message"),
                )

    async def close(self) -> None:
        for task in (self._pinger, self._handler, self._reader):
            if task is not None:
                task.cancel()
        with contextlib.suppress(websockets.ConnectionClosed):
            await self.send({"type": "leave"})
        await self.socket.close()


class HubClient:
    """Client of the hub's WebSocket signaling (`/ws`)."""

    def __init__(self, ws_url: str) -> None:
        self._url = ws_url
        self._connections: list[_HubConnection] = []

    async def _join(self, name: str, subscribe: str) -> _HubConnection:
        socket = await websockets.connect(
            self._url, open_timeout=REPLY_TIMEOUT, max_size=2**20
        )
        connection = _HubConnection(socket, name)
        self._connections.append(connection)
        await connection.send(
            {
                "type": "join",
                "version": 1,
                "room": HUB_ROOM,
                "name": name,
                "subscribe": subscribe,
            }
        )
        await connection.expect("joined")
        return connection

    async def publish(self, pc: RTCPeerConnection) -> None:
        connection = await self._join("bench-publisher", "none")
        await pc.setLocalDescription(await pc.createOffer())
        sources = {
            transceiver.mid: "camera"
            for transceiver in pc.getTransceivers()
            if transceiver.kind == "video"
        }
        await connection.send(
            {"type": "publish", "sdp": pc.localDescription.sdp, "sources": sources}
        )
        reply = await connection.expect("answer", "up")
        await pc.setRemoteDescription(
            RTCSessionDescription(sdp=reply["sdp"], type="answer")
        )
        connection.keep_alive(None)

    async def subscribe(
        self, pc: RTCPeerConnection, index: int, before_answer: Callable[[], None]
    ) -> None:
        connection = await self._join(f"bench-subscriber-{index}", "all")
        offer = await connection.expect("offer", "down")
        answer = await _answer_offer(pc, offer["sdp"], before_answer)
        await connection.send({"type": "answer", "pc": "down", "sdp": answer})
        connection.keep_alive(pc)

    async def close(self) -> None:
        for connection in self._connections:
            with contextlib.suppress(Exception):
                await connection.close()


def make_client(relay: str, url: str) -> RelayClient | JanusClient | HubClient:
    if relay == "relay":
        return RelayClient(url)
    if relay == "janus":
        return JanusClient(url)
    if relay == "hub":
        return HubClient(url)
    raise ValueError(f"unknown relay {relay!r}; expected hub, relay or janus")
