"""Room, participant and track statistics for /api/stats and the stats page.

Bitrates are computed from the byte counters between two calls, per track or
down track, so a page that polls every few seconds shows current rates."""

from __future__ import annotations

import asyncio
import time
import weakref

from hub.rooms import RoomManager
from media import transcode_counter
from media.peer import LIVE_CONNECTIONS


class StatsCollector:
    def __init__(self, rooms: RoomManager) -> None:
        self.rooms = rooms
        self._previous: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _rate(self, obj, packets: int, nbytes: int, now: float) -> tuple[int, float]:
        previous = self._previous.get(obj)
        self._previous[obj] = (now, packets, nbytes)
        if previous is None or now - previous[0] <= 0:
            return 0, 0.0
        elapsed = now - previous[0]
        bitrate = int(8 * (nbytes - previous[2]) / elapsed)
        packet_rate = round((packets - previous[1]) / elapsed, 1)
        return bitrate, packet_rate

    def collect(self) -> dict:
        now = time.monotonic()
        rooms = []
        for room in list(self.rooms.rooms.values()):
            tracks = []
            for up in list(room.tracks.values()):
                bitrate, packet_rate = self._rate(up, up.packets, up.bytes, now)
                out = []
                for down in up.down_tracks:
                    down_bitrate, down_rate = self._rate(
                        down, down.packets, down.bytes, now
                    )
                    out.append(
                        {
                            **down.stats(),
                            "bitrate": down_bitrate,
                            "packet_rate": down_rate,
                        }
                    )
                since_keyframe = (
                    round(now - up.last_keyframe_time, 1)
                    if up.last_keyframe_time is not None
                    else None
                )
                tracks.append(
                    {
                        "id": up.id,
                        "peer": up.owner,
                        "kind": up.kind,
                        "source": up.source,
                        "label": up.label,
                        "codec": up.codec.mimeType,
                        "muted": up.muted,
                        "in": {
                            "packets": up.packets,
                            "bytes": up.bytes,
                            "bitrate": bitrate,
                            "packet_rate": packet_rate,
                            "keyframes": up.keyframes,
                            "seconds_since_keyframe": since_keyframe,
                            "keyframe_requests_sent": up.keyframe_requests_sent,
                            "keyframe_requests_suppressed": (
                                up.keyframe_requests_suppressed
                            ),
                        },
                        "out": out,
                    }
                )
            rooms.append(
                {
                    "id": room.id,
                    "peers": [p.info() for p in room.participants.values()],
                    "tracks": tracks,
                }
            )
        return {
            "rooms": rooms,
            "transcoding": transcode_counter.snapshot(),
            "process": {
                "asyncio_tasks": len(asyncio.all_tasks()),
                "peer_connections": sum(
                    1 for pc in list(LIVE_CONNECTIONS) if pc.connectionState != "closed"
                ),
            },
        }
