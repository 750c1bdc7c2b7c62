"""Publisher process of the first-frame benchmark: one 720p VP8 stream.

Two sources of the same pictures (the clip of sfu/source.py):

- `clip`: the pre-encoded clip sent as it is (`sfu.peer.ClipTrack`), with a
  keyframe every 2 s. aiortc 1.16 packs pre-encoded frames without an
  encoder, so this publisher ignores keyframe requests (PLI, FIR).
- `encoder`: the clip decoded picture by picture and encoded live by
  aiortc's VP8 encoder at a fixed 1.2 Mbit/s, which makes a keyframe only
  at the start and when the relay requests one, as a browser does. aiortc
  1.16 starts a new encoder, and so a keyframe, whenever a REMB estimate
  moves its target bitrate by over 10 %; this publisher ignores REMB so
  that keyframes come only on request.

The process records the monotonic time of every keyframe request it gets.
It prints `{"event": "ready"}` once its connection carries media, then
replies to `{"cmd": "report"}` with `{"report": {"keyframe_requests": [...],
"frames_sent": N}}`; `{"cmd": "stop"}` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from fractions import Fraction
from pathlib import Path

import aiortc.codecs.vpx
import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RTCP_PSFB_APP, AnyRtcpPacket, RtcpPsfbPacket

BENCH_DIR = Path(__file__).resolve().parent.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from sfu.clients import make_client  # noqa: E402
from sfu.loadgen import emit, next_command, read_commands  # noqa: E402
from sfu.peer import (  # noqa: E402
    VIDEO_CLOCK_RATE,
    ClipTrack,
    new_peer_connection,
    prefer_vp8,
    use_loopback_only,
    wait_connected,
)
from sfu.source import FPS, Clip, load_clip  # noqa: E402

logger = logging.getLogger(__name__)

SOURCES = ("clip", "encoder")
# The pre-encoded clip's bitrate (sfu/source.py), for the live encoder too.
ENCODER_BITRATE = 1_200_000


class PictureTrack(MediaStreamTrack):
    """Video track of the clip's decoded pictures at 30 fps, for an encoder.

    The clip's frames are decoded one by one as they are due; the clip
    loops on a keyframe, so one decoder serves every loop.
    """

    kind = "video"

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self._clip = clip
        self._decoder = av.CodecContext.create("vp8", "r")
        self._start: float | None = None
        self.frames_sent = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self.frames_sent / FPS - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        data = self._clip.frames[self.frames_sent % len(self._clip.frames)]
        pictures = self._decoder.decode(av.Packet(data))
        if not pictures:
            raise RuntimeError(
                f"clip frame {self.frames_sent % len(self._clip.frames)} of "
                f"{self._clip.path} decoded to no picture; delete the clip file "
                "so the benchmark makes it again"
            )
        picture = pictures[0]
        picture.pts = self.frames_sent * (VIDEO_CLOCK_RATE // FPS)
        picture.time_base = Fraction(1, VIDEO_CLOCK_RATE)
        self.frames_sent += 1
        return picture


async def run(args: argparse.Namespace) -> None:
    clip = load_clip(Path(args.clip))
    client = make_client(args.relay, args.url)
    pc = new_peer_connection()
    track: ClipTrack | PictureTrack = (
        ClipTrack(clip) if args.source == "clip" else PictureTrack(clip)
    )
    transceiver = pc.addTransceiver(track, direction="sendonly")
    prefer_vp8(transceiver)

    # aiortc calls the sender's _send_keyframe on each PLI or FIR; recording
    # the calls shows when the relay's keyframe requests arrive.
    requests: list[float] = []
    sender = transceiver.sender
    send_keyframe = sender._send_keyframe

    def record_keyframe_request() -> None:
        requests.append(time.monotonic())
        send_keyframe()

    sender._send_keyframe = record_keyframe_request  # type: ignore[method-assign]

    if args.source == "encoder":
        # Vp8Encoder reads this module global when aiortc creates it, at the
        # first frame.
        aiortc.codecs.vpx.DEFAULT_BITRATE = ENCODER_BITRATE
        handle_rtcp = sender._handle_rtcp_packet

        async def handle_rtcp_without_remb(packet: AnyRtcpPacket) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                return
            await handle_rtcp(packet)

        sender._handle_rtcp_packet = handle_rtcp_without_remb  # type: ignore[method-assign]

    commands = await read_commands()
    try:
        await client.publish(pc)
        await wait_connected(pc, args.connect_timeout)
        emit({"event": "ready", "connected": 1, "failed": 0, "errors": []})
        while True:
            command = await next_command(commands)
            if command["cmd"] == "report":
                emit(
                    {
                        "report": {
                            "keyframe_requests": list(requests),
                            "frames_sent": track.frames_sent,
                        }
                    }
                )
            elif command["cmd"] == "stop":
                break
    finally:
        await pc.close()
        await client.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relay", choices=["hub", "janus"], required=True)
    parser.add_argument("--url", required=True, help="relay signaling URL")
    parser.add_argument("--clip", required=True, help="pre-encoded VP8 WebM file")
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--deadline", type=float, default=300.0, help="seconds before exiting anyway"
    )
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> None:
    use_loopback_only()
    try:
        await asyncio.wait_for(run(args), args.deadline)
    except TimeoutError:
        logger.error("publisher stopped at its %s s deadline", args.deadline)


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
        logger.exception("publisher failed")
        emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)


if __name__ == "__main__":
    main()
