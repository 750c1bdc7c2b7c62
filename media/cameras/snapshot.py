"""JPEG snapshots of a camera's current picture.

The picture is decoded from the feed's cached GOP: every coded picture from the
latest keyframe up to now, decoded in order, and the last frame is encoded as
JPEG with FFmpeg's mjpeg encoder (Pillow is not a dependency). A snapshot is
kept for `max_age` seconds, so a wall of thumbnails refreshing at once costs
one decode per camera.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from fractions import Fraction

import av

from media.cameras.ingest import GopSnapshot

logger = logging.getLogger(__name__)

# mjpeg quantizer scale: 2 is best, 31 worst; 5 keeps a 720p picture near 100 kB.
JPEG_QSCALE = 5


class SnapshotError(RuntimeError):
    pass


@dataclass
class Snapshot:
    jpeg: bytes
    width: int
    height: int
    encoded_at: float  # time.monotonic() when it was encoded


def decode_last_picture(gop: GopSnapshot) -> av.VideoFrame:
    """Decode the GOP and return its last picture."""
    decoder = av.CodecContext.create(gop.codec_name, "r")
    if gop.extradata:
        decoder.extradata = gop.extradata
    last: av.VideoFrame | None = None
    for unit in gop.units:
        try:
            for frame in decoder.decode(av.Packet(unit)):
                last = frame
        except av.InvalidDataError:
            continue
    for frame in decoder.decode(None):
        last = frame
    if last is None:
        raise SnapshotError(
            f"no picture could be decoded from {len(gop.units)} cached "
            f"{gop.codec_name} units"
        )
    return last


def encode_jpeg(frame: av.VideoFrame, qscale: int = JPEG_QSCALE) -> bytes:
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width = frame.width
    encoder.height = frame.height
    encoder.pix_fmt = "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    encoder.qscale = qscale
    picture = frame.reformat(format="yuvj420p")
    picture.pts = 0
    packets = list(encoder.encode(picture)) + list(encoder.encode(None))
    if not packets:
        raise SnapshotError("the JPEG encoder returned no picture")
    return bytes(packets[0])


def render_snapshot(gop: GopSnapshot) -> Snapshot:
    frame = decode_last_picture(gop)
    return Snapshot(encode_jpeg(frame), frame.width, frame.height, time.monotonic())


class SnapshotCache:
    """Snapshots by (camera id, stream), each kept for `max_age` seconds."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._snapshots: dict[tuple[str, str], Snapshot] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    def forget(self, camera_id: str) -> None:
        for key in [key for key in self._snapshots if key[0] == camera_id]:
            del self._snapshots[key]

    async def get(
        self, camera_id: str, stream: str, gop: GopSnapshot | None
    ) -> Snapshot:
        key = (camera_id, stream)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._snapshots.get(key)
            if (
                cached is not None
                and time.monotonic() - cached.encoded_at < self.max_age
            ):
                return cached
            if gop is None:
                raise SnapshotError(
                    f"camera {camera_id!r} has not sent a keyframe yet; retry in a "
                    "few seconds"
                )
            snapshot = await asyncio.to_thread(render_snapshot, gop)
            logger.debug(
                "camera=%s stream=%s snapshot %dx%d, %d bytes",
                camera_id,
                stream,
                snapshot.width,
                snapshot.height,
                len(snapshot.jpeg),
            )
            self._snapshots[key] = snapshot
            return snapshot
