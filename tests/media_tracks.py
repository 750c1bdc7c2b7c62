"""Synthetic tracks whose pictures tell their publisher apart, so a test can
check that the right picture reaches the right subscriber."""

from __future__ import annotations

import av
from aiortc.mediastreams import VideoStreamTrack


class FlatVideoTrack(VideoStreamTrack):
    """A 320x240 picture of one grey level (luma `level`, 16..235)."""

    def __init__(self, level: int, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.level = level
        self.width = width
        self.height = height

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = av.VideoFrame(width=self.width, height=self.height, format="yuv420p")
        for index, plane in enumerate(frame.planes):
            value = self.level if index == 0 else 128
            plane.update(bytes([value]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


def mean_luma(frame: av.VideoFrame) -> float:
    plane = frame.planes[0]
    data = bytes(plane)
    # Sample the middle row to stay clear of the codec's edge handling.
    row = frame.height // 2
    line = data[row * plane.line_size : row * plane.line_size + frame.width]
    return sum(line) / len(line)
