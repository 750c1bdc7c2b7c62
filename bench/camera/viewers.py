"""Viewer process: aiortc viewers that time their way to the first picture.

Run by run_camera.py and run_first_frame.py and driven over stdin/stdout
with one JSON object per line, as sfu/loadgen.py is. Each viewer replaces
its receiver's RTP handler with `sfu.peer.ReceiveCounter`, so it counts
packets without decoding, and a `FirstFrameProbe` decodes only up to the
first picture. Commands (each reply carries the viewer's `index`):

- `{"cmd": "join", "index": I, "subscribe": "all"}`: join the room (hub).
  Replies `joined` at once, then `opened` after the first decoded picture
  of the first video track the hub offers, whenever the offer comes.
- `{"cmd": "join", "index": I, "subscribe": "none"}`: join without
  receiving anything (hub); replies `joined`.
- `{"cmd": "subscribe", "index": I, "track": ID}`: a viewer joined with
  "none" requests one track (hub); replies `opened`.
- `{"cmd": "open", "index": I}`: subscribe to the relay's one publisher
  (Janus VideoRoom); replies `opened`.
- `{"cmd": "close", "index": I}`: leave and close; replies `closed`.
- `{"cmd": "snap", "at": T}`: the packet counters of every open viewer at
  monotonic time T (one clock for all processes); replies `snap`.
- `{"cmd": "stop"}`: close everything and exit.

`opened` contains `times`: monotonic seconds of each step (`join_sent` or
`subscribe_sent` or `open_started`, `joined`, `offer`, `answer_sent`,
`ice_connected`, `connected`, then the probe's `first_packet`,
`keyframe_start`, `keyframe_complete`, `decoded`), or `error`. Logs go to
stderr; the process exits by itself after `--deadline` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import websockets

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
# The hub's media.codecs adds H.264 profiles to aiortc's list (see
# _accept_h264_profiles), and the bench folder contains sfu and camera.
for folder in (str(BENCH_DIR), str(REPO_DIR)):
    if folder not in sys.path:
        sys.path.insert(0, folder)

from sfu.clients import (  # noqa: E402
    HUB_ROOM,
    REPLY_TIMEOUT,
    JanusClient,
    _answer_offer,
    _HubConnection,
)
from sfu.loadgen import emit, next_command, read_commands  # noqa: E402
from sfu.peer import (  # noqa: E402
    VIDEO_CLOCK_RATE,
    ReceiveCounter,
    new_peer_connection,
    use_loopback_only,
)

from camera.firstframe import CODECS, FirstFrameProbe  # noqa: E402
from media.codecs import ensure_h264_profile  # noqa: E402

logger = logging.getLogger(__name__)

# Seconds between a viewer's first picture and the check of its age.
AGE_DELAY = 0.5


def _accept_h264_profiles(sdp: str) -> None:
    """Let aiortc answer the H.264 profiles of an offer.

    aiortc 1.16 answers H.264 only in Constrained Baseline; a camera
    forwarded by the hub may be Main or High, which FFmpeg decodes.
    """
    for profile in re.findall(r"profile-level-id=([0-9a-fA-F]{6})", sdp):
        ensure_h264_profile(profile)


class Viewer:
    """One viewer: a receiving peer connection and its timings."""

    def __init__(self, index: int, codec: str) -> None:
        self.index = index
        self.codec = codec
        self.pc = new_peer_connection()
        self.times: dict[str, float] = {}
        self.counter: ReceiveCounter | None = None
        self.probe = FirstFrameProbe(codec)
        self.connection: _HubConnection | None = None
        self.closed = False
        # Seconds of media between the first picture and the live stream.
        self.picture_age: float | None = None

        @self.pc.on("iceconnectionstatechange")
        def on_ice() -> None:
            if self.pc.iceConnectionState == "completed":
                self.times.setdefault("ice_connected", time.monotonic())

        @self.pc.on("connectionstatechange")
        def on_connection() -> None:
            if self.pc.connectionState == "connected":
                self.times.setdefault("connected", time.monotonic())

    def install_counter(self) -> None:
        """Replace the RTP handler of the first video receiver of `codec`."""
        self.times.setdefault("offer_applied", time.monotonic())
        if self.counter is not None:
            return
        mime = f"video/{self.codec}"
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind != "video":
                continue
            for codec in transceiver._codecs:
                if codec.mimeType.lower() == mime:
                    self.counter = ReceiveCounter(
                        transceiver.receiver, codec.payloadType
                    )
                    self.counter.assembler = self.probe
                    return
        raise ValueError(
            f"viewer {self.index}: the offer has no {mime} video section; "
            "check that the relay forwards this codec"
        )

    async def wait_first_picture(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.probe.done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"viewer {self.index} decoded no picture in {timeout} s "
                f"({self.probe.packets} video packets received)"
            ) from None
        # The media a moment after the picture shows how old the picture was:
        # a replay of cached packets arrives as one burst.
        await asyncio.sleep(AGE_DELAY)
        age = self.probe.picture_age(VIDEO_CLOCK_RATE)
        if age is not None:
            self.picture_age = round(age - AGE_DELAY, 3)
        if self.counter is not None:
            # The counter goes on counting without the probe.
            self.counter.assembler = None

    def report(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "times": {**self.times, **self.probe.times},
            "picture_age": self.picture_age,
            "probe": self.probe.result(),
        }

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.close()
        await self.pc.close()


class ViewerProcess:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.viewers: dict[int, Viewer] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.janus: JanusClient | None = None

    def _viewer(self, index: int) -> Viewer:
        viewer = self.viewers.get(index)
        if viewer is None:
            viewer = self.viewers[index] = Viewer(index, self.args.codec)
        return viewer

    def spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guarded(self, viewer: Viewer, steps: Any) -> None:
        """Run the steps of an open and reply `opened` with times or error."""
        try:
            await asyncio.wait_for(steps, self.args.open_timeout)
        except Exception as exc:
            logger.warning("viewer=%d open failed: %s", viewer.index, exc)
            emit(
                {"opened": {**viewer.report(), "error": f"{type(exc).__name__}: {exc}"}}
            )
            return
        emit({"opened": viewer.report()})

    # Hub signaling.

    async def hub_join(self, viewer: Viewer, subscribe: str) -> None:
        socket = await websockets.connect(
            self.args.url, open_timeout=REPLY_TIMEOUT, max_size=2**20
        )
        connection = _HubConnection(socket, f"viewer-{viewer.index}")
        viewer.connection = connection
        viewer.times["join_sent"] = time.monotonic()
        await connection.send(
            {
                "type": "join",
                "version": 1,
                "room": HUB_ROOM,
                "name": f"bench-viewer-{viewer.index}",
                "subscribe": subscribe,
            }
        )
        joined = await connection.expect("joined")
        viewer.times["joined"] = time.monotonic()
        emit(
            {
                "joined": {
                    "index": viewer.index,
                    "peer": joined["peer"],
                    "tracks": joined["tracks"],
                }
            }
        )
        if subscribe == "none":
            connection.keep_alive(None)

    async def hub_answer(self, viewer: Viewer, handle_renegotiation: bool) -> None:
        connection = viewer.connection
        if connection is None:
            raise RuntimeError(f"viewer {viewer.index} has not joined")
        # Offers can wait as long as the hub takes to start a camera.
        while True:
            try:
                offer = await connection.expect("offer", "down")
                break
            except TimeoutError:
                logger.info("viewer=%d still waiting for a down offer", viewer.index)
        viewer.times["offer"] = time.monotonic()
        _accept_h264_profiles(offer["sdp"])
        answer = await _answer_offer(viewer.pc, offer["sdp"], viewer.install_counter)
        await connection.send({"type": "answer", "pc": "down", "sdp": answer})
        viewer.times["answer_sent"] = time.monotonic()
        if handle_renegotiation:
            connection.keep_alive(viewer.pc)
        else:
            # The pinger has run since the join. Later offers need answers too.
            connection._handler = asyncio.create_task(
                connection._renegotiate(viewer.pc)
            )
        await viewer.wait_first_picture(self.args.open_timeout)

    async def join_and_watch(self, viewer: Viewer) -> None:
        await self.hub_join(viewer, "all")
        await self.hub_answer(viewer, handle_renegotiation=True)

    async def subscribe_and_watch(self, viewer: Viewer, track: str) -> None:
        connection = viewer.connection
        if connection is None:
            raise RuntimeError(f"viewer {viewer.index} must join before subscribing")
        viewer.times["subscribe_sent"] = time.monotonic()
        await connection.send({"type": "subscribe", "tracks": [track]})
        await self.hub_answer(viewer, handle_renegotiation=False)

    # Janus signaling.

    async def janus_watch(self, viewer: Viewer) -> None:
        if self.janus is None:
            self.janus = JanusClient(self.args.url)
        viewer.times["open_started"] = time.monotonic()
        await self.janus.subscribe(viewer.pc, viewer.index, viewer.install_counter)
        viewer.times["answer_sent"] = time.monotonic()
        await viewer.wait_first_picture(self.args.open_timeout)

    # Commands.

    async def handle(self, command: dict[str, Any]) -> bool:
        """Carry out one command; return False on `stop`."""
        name = command["cmd"]
        if name == "stop":
            return False
        if name == "snap":
            self.spawn(self.snap(command["at"]))
            return True
        index = int(command["index"])
        viewer = self._viewer(index)
        if name == "join":
            if command.get("subscribe", "all") == "all":
                self.spawn(self._guarded(viewer, self.join_and_watch(viewer)))
            else:
                self.spawn(self._join_only(viewer))
        elif name == "subscribe":
            steps = self.subscribe_and_watch(viewer, command["track"])
            self.spawn(self._guarded(viewer, steps))
        elif name == "open":
            self.spawn(self._guarded(viewer, self.janus_watch(viewer)))
        elif name == "close":
            self.spawn(self._close(viewer))
        else:
            raise ValueError(f"unknown command {name!r}")
        return True

    async def _join_only(self, viewer: Viewer) -> None:
        try:
            await asyncio.wait_for(self.hub_join(viewer, "none"), REPLY_TIMEOUT)
        except Exception as exc:
            emit(
                {
                    "joined": {
                        "index": viewer.index,
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                }
            )

    async def _close(self, viewer: Viewer) -> None:
        await viewer.close()
        emit({"closed": {"index": viewer.index}})

    async def snap(self, at: float) -> None:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        counters = [
            {"index": v.index, **v.counter.snapshot()}
            for v in self.viewers.values()
            if v.counter is not None and not v.closed
        ]
        emit({"snap": {"time": time.monotonic(), "viewers": counters}})

    async def run(self) -> None:
        commands = await read_commands()
        try:
            while await self.handle(await next_command(commands)):
                pass
        finally:
            for task in list(self.tasks):
                task.cancel()
            for viewer in self.viewers.values():
                with contextlib.suppress(Exception):
                    await viewer.close()
            if self.janus is not None:
                await self.janus.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", choices=["hub", "janus"], required=True)
    parser.add_argument("--url", required=True, help="relay signaling URL")
    parser.add_argument("--codec", choices=CODECS, required=True)
    parser.add_argument(
        "--open-timeout",
        type=float,
        default=30.0,
        help="seconds from opening to the first decoded picture (default 30)",
    )
    parser.add_argument(
        "--deadline", type=float, default=300.0, help="seconds before exiting anyway"
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    use_loopback_only()
    try:
        await asyncio.wait_for(ViewerProcess(args).run(), args.deadline)
    except TimeoutError:
        logger.error("viewers stopped at their %s s deadline", args.deadline)


def main() -> None:
    args = parse_args()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(main_async(args))
    except Exception as exc:
        logger.exception("viewers failed")
        emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
