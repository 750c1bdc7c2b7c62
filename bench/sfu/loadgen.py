"""Load generator process: the publisher, or a batch of subscribers.

Run by `run_sfu.py`, one process per role, and driven over stdin/stdout with
one JSON object per line. The process prints `{"event": "ready", ...}` once
its peer connections carry media, then replies to each command line:

- `{"cmd": "phase"}`: publisher only, the monotonic time of its first frame,
  so the caller can place snapshots between two frames.
- `{"cmd": "snap", "at": T, "record": true|false}`: counters at monotonic
  time T (the same clock in every process); for subscribers, `record`
  starts or stops keeping the sampled subscribers' frames at T.
- `{"cmd": "report"}`: subscribers only, the integrity check of the frames
  kept by the sampled subscribers.
- `{"cmd": "stop"}`: close every connection and exit.

Logs go to stderr. The process exits by itself after `--deadline` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from .clients import make_client
from .peer import (
    ClipTrack,
    FrameAssembler,
    ReceiveCounter,
    check_frames,
    new_peer_connection,
    prefer_vp8,
    use_loopback_only,
    video_payload_type,
    wait_connected,
)
from .source import load_clip

logger = logging.getLogger(__name__)


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def read_commands() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    return reader


async def next_command(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await reader.readline()
    if not line:
        return {"cmd": "stop"}
    return json.loads(line)


async def run_publisher(args: argparse.Namespace) -> None:
    clip = load_clip(Path(args.clip))
    client = make_client(args.relay, args.url)
    pc = new_peer_connection()
    track = ClipTrack(clip)
    transceiver = pc.addTransceiver(track, direction="sendonly")
    prefer_vp8(transceiver)
    commands = await read_commands()
    try:
        await client.publish(pc)
        await wait_connected(pc, args.connect_timeout)
        emit({"event": "ready", "connected": 1, "failed": 0, "errors": []})
        while True:
            command = await next_command(commands)
            if command["cmd"] == "phase":
                emit({"phase": {"start": track.start_time}})
            elif command["cmd"] == "snap":
                await _sleep_until(command["at"])
                stats = await transceiver.sender.getStats()
                packets = [
                    s.packetsSent for s in stats.values() if s.type == "outbound-rtp"
                ]
                emit(
                    {
                        "snap": {
                            "time": time.monotonic(),
                            "frames_sent": track.frames_sent,
                            "packets_sent": packets[0] if packets else 0,
                        }
                    }
                )
            elif command["cmd"] == "stop":
                break
    finally:
        await pc.close()
        await client.close()


async def _sleep_until(monotonic_time: float) -> None:
    # The event loop's clock is time.monotonic(), shared by all processes.
    delay = monotonic_time - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


class Subscriber:
    def __init__(self, index: int, sampled: bool) -> None:
        self.index = index
        self.sampled = sampled
        self.pc = new_peer_connection()
        self.counter: ReceiveCounter | None = None
        self.assembler: FrameAssembler | None = None

    def install_counter(self) -> None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and self.counter is None:
                self.counter = ReceiveCounter(
                    transceiver.receiver, video_payload_type(transceiver)
                )
        if self.counter is None:
            raise ValueError(
                f"subscriber {self.index}: the relay's offer has no video section"
            )

    async def wait_first_packet(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.counter is None or self.counter.packets == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"subscriber {self.index} got no video packet in {timeout} s"
                )
            await asyncio.sleep(0.05)


async def run_subscribers(args: argparse.Namespace) -> None:
    clip = load_clip(Path(args.clip))
    client = make_client(args.relay, args.url)
    subscribers = [
        Subscriber(args.first_index + i, sampled=i < args.sample)
        for i in range(args.count)
    ]
    limit = asyncio.Semaphore(args.concurrency)
    commands = await read_commands()

    async def connect(subscriber: Subscriber) -> None:
        async with limit:
            await client.subscribe(
                subscriber.pc, subscriber.index, subscriber.install_counter
            )
            await wait_connected(subscriber.pc, args.connect_timeout)
        await subscriber.wait_first_packet(args.connect_timeout)

    try:
        outcomes = await asyncio.gather(
            *(connect(s) for s in subscribers), return_exceptions=True
        )
        connected = [s for s, o in zip(subscribers, outcomes, strict=True) if o is None]
        errors = sorted({f"{type(o).__name__}: {o}" for o in outcomes if o is not None})
        for error in errors:
            logger.warning("subscribers failed to connect: %s", error)
        emit(
            {
                "event": "ready",
                "connected": len(connected),
                "failed": len(subscribers) - len(connected),
                "errors": errors[:5],
            }
        )
        while True:
            command = await next_command(commands)
            if command["cmd"] == "snap":
                await _sleep_until(command["at"])
                await _record(connected, command.get("record", False))
                emit(
                    {
                        "snap": {
                            "time": time.monotonic(),
                            "subscribers": [
                                s.counter.snapshot() for s in connected if s.counter
                            ],
                        }
                    }
                )
            elif command["cmd"] == "report":
                # Decoding happens outside the measured window.
                reports = [
                    {"index": s.index, **check_frames(s.assembler.frames, clip)}
                    for s in connected
                    if s.assembler is not None
                ]
                emit({"report": reports})
            elif command["cmd"] == "stop":
                break
    finally:
        for subscriber in subscribers:
            with contextlib.suppress(Exception):
                await subscriber.pc.close()
        await client.close()


async def _record(subscribers: list[Subscriber], record: bool) -> None:
    for subscriber in subscribers:
        if not subscriber.sampled or subscriber.counter is None:
            continue
        if record:
            subscriber.assembler = FrameAssembler()
            subscriber.counter.assembler = subscriber.assembler
            # A keyframe soon after recording starts lets a decoder start,
            # also behind a relay that re-encodes.
            await subscriber.counter.request_keyframe()
        else:
            subscriber.counter.assembler = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["publisher", "subscribers"], required=True)
    parser.add_argument("--relay", choices=["hub", "relay", "janus"], required=True)
    parser.add_argument("--url", required=True, help="relay signaling URL")
    parser.add_argument("--clip", required=True, help="pre-encoded VP8 WebM file")
    parser.add_argument("--count", type=int, default=1, help="subscribers to run")
    parser.add_argument("--first-index", type=int, default=0)
    parser.add_argument(
        "--sample", type=int, default=0, help="subscribers that keep their frames"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="subscribers connecting at once"
    )
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--deadline", type=float, default=120.0, help="seconds before exiting anyway"
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    use_loopback_only()
    run = run_publisher if args.role == "publisher" else run_subscribers
    try:
        await asyncio.wait_for(run(args), args.deadline)
    except TimeoutError:
        logger.error("role=%s stopped at its %s s deadline", args.role, args.deadline)


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
        logger.exception("role=%s failed", args.role)
        emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
