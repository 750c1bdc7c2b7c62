"""Camera tracks in rooms: a dispatcher pushes a camera into a running
session and every participant receives it as one more track.

One up track per camera stream serves the whole hub, whichever rooms show
it. The camera's reader runs while at least one room contains the track."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub.errors import HubError, NotFound, ProtocolError
from hub.rooms import Room, RoomManager
from media.cameras import CameraManager, CameraRegistry, FeedOffline
from media.uptrack import UpTrack
from signaling.service import SignalingService

logger = logging.getLogger(__name__)

STREAMS = ("main", "sub")
# authorize(request, action, room_id, camera_id) raises HubError to refuse.
Authorize = Callable[[Request, str, str, str | None], Awaitable[None]]


class CameraTrack:
    """The up track of one camera stream and the rooms that hold it."""

    def __init__(self, key: tuple[str, str], up: UpTrack, feed, audio: UpTrack | None):
        self.key = key
        self.up = up
        self.audio = audio
        self.feed = feed
        self.rooms: set[str] = set()


class CameraPush:
    def __init__(
        self,
        rooms: RoomManager,
        service: SignalingService,
        registry: CameraRegistry,
        manager: CameraManager,
        media_settings,
    ) -> None:
        self.rooms = rooms
        self.service = service
        self.registry = registry
        self.manager = manager
        self.media_settings = media_settings
        self.tracks: dict[tuple[str, str], CameraTrack] = {}

    async def _track(self, camera_id: str, stream: str) -> CameraTrack:
        key = (camera_id, stream)
        existing = self.tracks.get(key)
        if existing is not None:
            return existing
        camera = self.registry.get(camera_id)
        feed = self.manager.feed(camera_id, stream)
        codec = await feed.wait_ready()

        track_id = f"cam-{camera_id}-{stream}"
        up = UpTrack(
            track_id,
            "video",
            codec,
            source="camera-feed",
            label=camera.name,
            request_keyframe=feed.request_keyframe,
            cache_gop=True,
            owner=f"camera:{camera_id}",
            keyframe_request_interval=self.media_settings.keyframe_request_interval,
            nack_history=self.media_settings.nack_history,
        )
        feed.add_sink(up.forward)

        audio = None
        if feed.audio_codec is not None:
            audio = UpTrack(
                f"{track_id}-audio",
                "audio",
                feed.audio_codec,
                source="camera-audio",
                label=camera.name,
                request_keyframe=lambda: None,
                owner=f"camera:{camera_id}",
            )
            feed.add_sink(audio.forward, kind="audio")

        entry = CameraTrack(key, up, feed, audio)
        self.tracks[key] = entry
        logger.info("camera=%s stream=%s track=%s started", camera_id, stream, track_id)
        return entry

    def _release(self, entry: CameraTrack) -> None:
        if entry.rooms:
            return
        entry.feed.remove_sink(entry.up.forward)
        entry.up.end()
        if entry.audio is not None:
            entry.feed.remove_sink(entry.audio.forward)
            entry.audio.end()
        self.tracks.pop(entry.key, None)
        logger.info("camera=%s stream=%s track=%s released", *entry.key, entry.up.id)

    async def push(self, room_id: str, camera_id: str, stream: str) -> CameraTrack:
        """Show a camera stream in a room (idempotent)."""
        if stream not in STREAMS:
            raise ProtocolError(f"stream must be 'main' or 'sub', got {stream!r}")
        room = self.rooms.rooms.get(room_id)
        if room is None:
            raise NotFound(
                f"room {room_id!r} has no participants; a camera can only be pushed "
                "into a running session"
            )
        entry = await self._track(camera_id, stream)
        if room_id not in entry.rooms:
            entry.rooms.add(room_id)
            for up in (entry.up, entry.audio):
                if up is not None:
                    self.service.add_track(room, up)
            room.broadcast_tracks()
            logger.info(
                "camera=%s stream=%s pushed into room=%s", camera_id, stream, room_id
            )
        return entry

    def remove(self, room_id: str, camera_id: str, stream: str) -> bool:
        entry = self.tracks.get((camera_id, stream))
        if entry is None or room_id not in entry.rooms:
            return False
        entry.rooms.discard(room_id)
        room = self.rooms.rooms.get(room_id)
        if room is not None:
            for up in (entry.up, entry.audio):
                if up is not None:
                    self._remove_from_room(room, up)
            room.broadcast_tracks()
        logger.info(
            "camera=%s stream=%s removed from room=%s", camera_id, stream, room_id
        )
        self._release(entry)
        return True

    def _remove_from_room(self, room: Room, up: UpTrack) -> None:
        room.tracks.pop(up.id, None)
        for participant in list(room.participants.values()):
            participant.requested_tracks.discard(up.id)
            if participant.media is not None and participant.media.unsubscribe(up.id):
                self.service.schedule_negotiation(participant)

    def room_closed(self, room_id: str) -> None:
        for entry in list(self.tracks.values()):
            if room_id in entry.rooms:
                entry.rooms.discard(room_id)
                self._release(entry)

    def pushed(self, room_id: str) -> list[dict]:
        return [
            {
                "camera": key[0],
                "stream": key[1],
                "track": entry.up.id,
                "label": entry.up.label,
            }
            for key, entry in self.tracks.items()
            if room_id in entry.rooms
        ]

    async def close(self) -> None:
        for entry in list(self.tracks.values()):
            entry.rooms.clear()
            self._release(entry)

    # --- HTTP -------------------------------------------------------------

    def routes(self, authorize: Authorize | None = None) -> list[Route]:
        async def check(request: Request, action: str, camera_id: str | None) -> None:
            if authorize is not None:
                room_id = request.path_params["room_id"]
                await authorize(request, action, room_id, camera_id)

        async def push(request: Request) -> JSONResponse:
            try:
                body = await _json_body(request)
                camera_id = body.get("camera")
                if not isinstance(camera_id, str) or not camera_id:
                    raise ProtocolError(
                        f"field 'camera' must be a camera id string, got {camera_id!r}"
                    )
                await check(request, "push_camera", camera_id)
                stream = body.get("stream", "main")
                entry = await self.push(
                    request.path_params["room_id"], camera_id, stream
                )
            except FeedOffline as exc:
                return _error(exc, 503)
            except HubError as exc:
                return _error(exc, _status(exc))
            except Exception:
                logger.exception(
                    "room=%s camera push failed", request.path_params["room_id"]
                )
                raise
            return JSONResponse(
                {
                    "camera": camera_id,
                    "stream": stream,
                    "track": entry.up.id,
                    "label": entry.up.label,
                },
                status_code=201,
            )

        async def remove(request: Request) -> JSONResponse:
            try:
                await check(request, "push_camera", request.path_params["camera_id"])
            except HubError as exc:
                return _error(exc, _status(exc))
            stream = request.query_params.get("stream", "main")
            room_id = request.path_params["room_id"]
            camera_id = request.path_params["camera_id"]
            if not self.remove(room_id, camera_id, stream):
                return _error(
                    NotFound(
                        f"camera {camera_id!r} ({stream}) is not shown in room "
                        f"{room_id!r}"
                    ),
                    404,
                )
            return JSONResponse({"removed": True})

        async def listing(request: Request) -> JSONResponse:
            return JSONResponse(
                {"cameras": self.pushed(request.path_params["room_id"])}
            )

        return [
            Route("/api/rooms/{room_id}/cameras", push, methods=["POST"]),
            Route("/api/rooms/{room_id}/cameras", listing, methods=["GET"]),
            Route(
                "/api/rooms/{room_id}/cameras/{camera_id}", remove, methods=["DELETE"]
            ),
        ]


async def _json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise ProtocolError("request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"request body must be a JSON object, got {body!r}")
    return body


def _status(exc: HubError) -> int:
    return {
        "not-found": 404,
        "forbidden": 403,
        "unauthorized": 401,
        "camera-offline": 503,
    }.get(exc.code, 400)


def _error(exc: HubError, status: int) -> JSONResponse:
    return JSONResponse({"error": exc.code, "message": exc.message}, status_code=status)
