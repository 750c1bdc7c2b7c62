"""Baseline relay: aiortc decodes the published video and re-encodes it per viewer.

One publisher offers on POST /publish; each subscriber gets a server offer
from POST /subscribe and sends its answer to POST /answer. The publisher's
track is decoded by aiortc's receiver and fanned out with
`aiortc.contrib.media.MediaRelay`; every subscriber's sender runs its own VP8
encoder. `MediaRelay` runs unbuffered: a slow encoder skips to the newest
picture instead of queueing without bound.

Usage: python -m sfu.relay_server --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

import uvicorn
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .peer import new_peer_connection, prefer_vp8, use_loopback_only

logger = logging.getLogger(__name__)


class RelayState:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.source: MediaStreamTrack | None = None
        self.publisher: RTCPeerConnection | None = None
        self.subscribers: dict[str, RTCPeerConnection] = {}
        self.ids = itertools.count(1)


def _sdp(body: object) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("sdp"), str):
        raise ValueError(f"expected a JSON object with a string 'sdp', got {body!r}")
    return body["sdp"]


def build_app() -> Starlette:
    state = RelayState()

    async def publish(request: Request) -> JSONResponse:
        try:
            sdp = _sdp(await request.json())
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if state.publisher is not None:
            return JSONResponse({"error": "a publisher is already set"}, 409)
        pc = new_peer_connection()
        state.publisher = pc
        track_ready = asyncio.Event()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                state.source = track
                track_ready.set()

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await asyncio.wait_for(track_ready.wait(), 5)
        logger.info("peer=publisher published its video")
        return JSONResponse({"sdp": pc.localDescription.sdp})

    async def subscribe(request: Request) -> JSONResponse:
        if state.source is None:
            return JSONResponse({"error": "no publisher yet"}, status_code=409)
        peer_id = f"s{next(state.ids)}"
        pc = new_peer_connection()
        state.subscribers[peer_id] = pc
        transceiver = pc.addTransceiver(
            state.relay.subscribe(state.source, buffered=False), direction="sendonly"
        )
        prefer_vp8(transceiver)
        await pc.setLocalDescription(await pc.createOffer())
        logger.info("peer=%s offered", peer_id)
        return JSONResponse({"id": peer_id, "sdp": pc.localDescription.sdp})

    async def answer(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            sdp = _sdp(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        pc = state.subscribers.get(body.get("id"))
        if pc is None:
            return JSONResponse(
                {"error": f"unknown subscriber id {body.get('id')!r}"}, 404
            )
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        return JSONResponse({})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        peers = list(state.subscribers.values())
        if state.publisher is not None:
            peers.append(state.publisher)
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)

    return Starlette(
        routes=[
            Route("/publish", publish, methods=["POST"]),
            Route("/subscribe", subscribe, methods=["POST"]),
            Route("/answer", answer, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    use_loopback_only()
    uvicorn.run(build_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
