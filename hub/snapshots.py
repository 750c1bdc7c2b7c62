"""Stored camera snapshots: the picture attached to a task assigned from a
camera tile. POST /api/cameras/{id}/snapshots saves the current picture under
<data_dir>/snapshots/ and returns the path to put in the task's
`snapshot_path`; GET /snapshots/... serves it back."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from hub.errors import HubError
from media.cameras import CameraManager

logger = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def snapshot_routes(manager: CameraManager, data_dir: Path) -> list[Route]:
    folder = data_dir / "snapshots"

    async def take(request: Request) -> JSONResponse:
        camera_id = request.path_params["camera_id"]
        if not SAFE_NAME.fullmatch(camera_id):
            return JSONResponse(
                {
                    "error": "bad-request",
                    "message": f"camera id {camera_id!r} is invalid",
                },
                status_code=400,
            )
        try:
            snapshot = await manager.snapshot(camera_id)
        except HubError as exc:
            status = 503 if exc.code == "camera-offline" else 404
            if exc.code not in ("camera-offline", "not-found"):
                status = 400
            return JSONResponse({"error": exc.code, "message": exc.message}, status)
        name = f"{int(time.time() * 1000)}.jpg"
        path = folder / camera_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(snapshot.jpeg)
        relative = f"snapshots/{camera_id}/{name}"
        logger.info("camera=%s snapshot stored at %s", camera_id, relative)
        return JSONResponse(
            {
                "snapshot_path": relative,
                "url": f"/{relative}",
                "width": snapshot.width,
                "height": snapshot.height,
            },
            status_code=201,
        )

    async def serve(request: Request):
        camera_id = request.path_params["camera_id"]
        name = request.path_params["name"]
        if not SAFE_NAME.fullmatch(camera_id) or not SAFE_NAME.fullmatch(name):
            return JSONResponse(
                {"error": "not-found", "message": "no such snapshot"}, 404
            )
        path = folder / camera_id / name
        if not path.is_file():
            return JSONResponse(
                {"error": "not-found", "message": f"snapshot {name!r} not found"}, 404
            )
        return FileResponse(path, media_type="image/jpeg")

    return [
        Route("/api/cameras/{camera_id}/snapshots", take, methods=["POST"]),
        Route("/snapshots/{camera_id}/{name}", serve, methods=["GET"]),
    ]
