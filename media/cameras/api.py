"""Admin HTTP API for cameras, under /api/cameras (Starlette routes).

Every error is a JSON object {"error": CODE, "message": TEXT}. Passwords are
never returned: a camera shows "******" when it has one, and sending that mask
back in an update keeps the stored password.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.http import Endpoint, error_response, guard
from media.cameras.ingest import FeedOffline
from media.cameras.manager import CameraManager
from media.cameras.registry import (
    STREAMS,
    Camera,
    CameraError,
    CameraExists,
    CameraNotFound,
    CameraRegistry,
    InvalidCamera,
)
from media.cameras.snapshot import SnapshotError

logger = logging.getLogger(__name__)

Authorize = Callable[[Request, str], "bool | Awaitable[bool]"]
"""Decides whether `request` may perform `action`: "cameras.read",
"cameras.write" or "cameras.snapshot". It returns (or awaits to) a bool, or
raises starlette's HTTPException to respond with its own status."""

CanSee = Callable[[Request, Camera], "bool | Awaitable[bool]"]
"""Decides whether the user of `request` may see `camera`, for example by unit
with hub.roles.can_see_camera. A hidden camera is left out of lists and
reported as not found (404)."""

MAX_BODY_BYTES = 16 * 1024


def allow_all(request: Request, action: str) -> bool:
    return True


def _status_of(error: CameraError) -> int:
    if isinstance(error, CameraNotFound):
        return 404
    if isinstance(error, CameraExists):
        return 409
    if isinstance(error, (FeedOffline, SnapshotError)):
        return 503
    return 400


def _known_error(error: Exception) -> Response | None:
    if isinstance(error, CameraError):
        return error_response(_status_of(error), error.code, error.message)
    if isinstance(error, SnapshotError):
        return error_response(503, "snapshot-failed", str(error))
    return None


def _guard(action: str, authorize: Authorize) -> Callable[[Endpoint], Endpoint]:
    return guard(action, authorize, _known_error)


# Stream URL schemes a camera added over HTTP may use. A local file or device
# path (FFmpeg opens those too) is accepted only from the camera file, which
# the operator controls, never from a request.
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt")


def _network_sources(body: dict[str, Any]) -> dict[str, Any]:
    for name in ("main_url", "sub_url"):
        url = body.get(name)
        if not isinstance(url, str) or not url:
            continue
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in NETWORK_SCHEMES:
            raise InvalidCamera(
                f"{name} must be a network stream URL ({', '.join(NETWORK_SCHEMES)}), "
                f"got scheme {scheme or 'none'!r}; local files can be listed only "
                "in the camera file"
            )
    return body


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidCamera(
            f"the request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}"
        )
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidCamera(
            f"the request body is not valid JSON ({error}); send a JSON object "
            "with Content-Type: application/json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidCamera(
            f"the request body must be a JSON object, got {type(body).__name__}"
        )
    return body


def make_routes(
    registry: CameraRegistry,
    manager: CameraManager,
    authorize: Authorize | None = None,
    *,
    can_see: CanSee | None = None,
) -> list[Route]:
    """Build the /api/cameras routes. `authorize` and `can_see` default to
    allowing everything."""
    check = authorize or allow_all

    async def visible(request: Request, camera: Camera) -> bool:
        if can_see is None:
            return True
        allowed = can_see(request, camera)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        return bool(allowed)

    async def find(request: Request) -> Camera:
        camera_id = request.path_params["camera_id"]
        camera = registry.get(camera_id)
        if not await visible(request, camera):
            raise CameraNotFound(
                f"camera {camera_id!r} not found; list cameras with GET /api/cameras"
            )
        return camera

    def describe(camera_id: str) -> dict[str, Any]:
        data = registry.get(camera_id).public()
        data["status"] = manager.status_dicts(camera_id)
        return data

    @_guard("cameras.read", check)
    async def list_cameras(request: Request) -> Response:
        network = request.query_params.get("network")
        unit = request.query_params.get("unit")
        cameras = []
        for camera in registry.list():
            if network and camera.network != network:
                continue
            if unit and not (camera.unit == unit or camera.unit.startswith(unit + ".")):
                continue
            if not await visible(request, camera):
                continue
            cameras.append(describe(camera.id))
        return JSONResponse({"cameras": cameras})

    @_guard("cameras.read", check)
    async def get_camera(request: Request) -> Response:
        camera = await find(request)
        return JSONResponse(describe(camera.id))

    @_guard("cameras.write", check)
    async def create_camera(request: Request) -> Response:
        camera = registry.create(_network_sources(await _json_object(request)))
        return JSONResponse(describe(camera.id), status_code=201)

    @_guard("cameras.write", check)
    async def update_camera(request: Request) -> Response:
        camera = await find(request)
        registry.update(camera.id, _network_sources(await _json_object(request)))
        return JSONResponse(describe(camera.id))

    @_guard("cameras.write", check)
    async def delete_camera(request: Request) -> Response:
        camera = await find(request)
        registry.delete(camera.id)
        return Response(status_code=204)

    @_guard("cameras.snapshot", check)
    async def snapshot(request: Request) -> Response:
        stream = request.query_params.get("stream") or None
        if stream is not None and stream not in STREAMS:
            raise InvalidCamera(
                f"query parameter 'stream' is {stream!r}; expected main or sub"
            )
        camera = await find(request)
        picture = await manager.snapshot(camera.id, stream)
        return Response(
            picture.jpeg,
            media_type="image/jpeg",
            headers={
                "Cache-Control": "no-store",
                "X-Image-Size": f"{picture.width}x{picture.height}",
            },
        )

    return [
        Route("/api/cameras", list_cameras, methods=["GET"]),
        Route("/api/cameras", create_camera, methods=["POST"]),
        Route("/api/cameras/{camera_id}", get_camera, methods=["GET"]),
        Route("/api/cameras/{camera_id}", update_camera, methods=["PUT", "PATCH"]),
        Route("/api/cameras/{camera_id}", delete_camera, methods=["DELETE"]),
        Route("/api/cameras/{camera_id}/snapshot.jpg", snapshot, methods=["GET"]),
    ]
