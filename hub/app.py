"""Build the hub's ASGI application from a Config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from aiortc.exceptions import InvalidStateError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from dispatch.api import make_routes as dispatch_routes
from dispatch.db import Store
from dispatch.overdue import OverdueWatcher
from hub.camera_push import CameraPush
from hub.config import Config
from hub.errors import HubError, NotFound
from hub.records_bridge import RecordsBridge
from hub.roles import Role, SessionKind, can_see_camera, is_allowed
from hub.roles import check as check_role
from hub.rooms import Room, RoomManager
from hub.shared import redis_invite_store
from hub.snapshots import snapshot_routes
from hub.stats import StatsCollector
from media import codecs, ice, transcode_counter
from media.cameras import build_camera_service
from media.cameras.api import make_routes as camera_routes
from media.peer import MediaSettings
from signaling.access import Access, access_routes
from signaling.service import SignalingService
from signaling.websocket import SignalingEndpoint

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


class Hub:
    """Everything one hub process holds, reachable from `app.state.hub`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rooms = RoomManager()
        self.media_settings = MediaSettings(
            max_down_backlog_bytes=config.media.max_down_backlog_bytes,
            keyframe_request_interval=config.media.keyframe_request_interval,
            nack_history=config.media.nack_history,
        )
        self.access = Access.from_config(config)
        if config.bus.redis_url:
            self.access.invites = redis_invite_store(config.bus.redis_url)
        self.signaling = SignalingService(
            self.rooms,
            self.media_settings,
            config.ice.servers,
            access=self.access,
        )
        self.stats = StatsCollector(self.rooms)
        self.camera_registry, self.camera_manager = build_camera_service(config)
        self.camera_push = CameraPush(
            self.rooms,
            self.signaling,
            self.camera_registry,
            self.camera_manager,
            self.media_settings,
        )
        self.signaling.hooks.append(self._on_signaling_event)
        config.data_path.mkdir(parents=True, exist_ok=True)
        # Creates or upgrades the schema on first start.
        self.store = Store.open(config.database_url)
        self.records = RecordsBridge(
            self.store, self.rooms, self.access.org, config.instance_name
        )
        self.signaling.hooks.append(self.records.on_event)
        self.overdue = OverdueWatcher(
            self.store, self.records.notify, unit_rooms=self.records.unit_rooms
        )

    async def start(self) -> None:
        await self.records.start()
        self.overdue.start()

    async def _on_signaling_event(self, event: str, room: Room, **extra) -> None:
        if event == "leave" and not room.participants:
            # Cameras shown in a room end with its last participant.
            for entry in self.camera_push.pushed(room.id):
                self.camera_push.remove(room.id, entry["camera"], entry["stream"])
            self.rooms.discard_if_empty(room)

    async def authorize(
        self, request: Request, action: str, room_id: str, camera_id: str | None = None
    ) -> None:
        """Check the HTTP request's bearer token allows `action` in the room.
        Without auth.required every request is allowed (LAN trial)."""
        if not self.access.required:
            return
        identity = self.access.bearer(request, room_id)
        kind, _title = self.access.room_kind(
            room_id, None, self.rooms.rooms.get(room_id)
        )
        check_role(kind, identity.role, action)
        if action == "push_camera" and camera_id is not None:
            camera = self.camera_registry.get(camera_id)
            if not self._sees(identity, camera):
                raise NotFound(
                    f"camera {camera_id!r} not found among the cameras of unit "
                    f"{identity.unit!r} and the units below it"
                )

    def _request_identity(self, request: Request):
        """Return the bearer token's identity, or raise HTTPException(401)."""
        try:
            return self.access.bearer(request, None)
        except HubError as exc:
            raise HTTPException(401, exc.message) from None

    async def authorize_cameras(self, request: Request, action: str) -> bool:
        """Camera API: reading and snapshots need the view_cameras right of a
        joint session; changing the registry needs a chair or dispatcher."""
        if not self.access.required:
            return True
        identity = self._request_identity(request)
        if action == "cameras.write":
            return identity.role in (Role.CHAIR, Role.DISPATCHER)
        return is_allowed(SessionKind.JOINT, identity.role, "view_cameras")

    def can_see_camera(self, request: Request, camera) -> bool:
        """A unit sees its own cameras and those of the units below it."""
        if not self.access.required:
            return True
        return self._sees(self._request_identity(request), camera)

    def _sees(self, identity, camera) -> bool:
        org = self.access.org
        if org is None or not identity.unit:
            return False
        try:
            return can_see_camera(org, identity.unit, camera.unit)
        except HubError:
            return False

    async def authorize_dispatch(self, request: Request, action: str) -> bool:
        """Map the dispatch API's actions onto roles; everything is allowed
        without auth.required (LAN trial)."""
        if not self.access.required:
            return True
        room_id = request.query_params.get("room", "")
        try:
            identity = self.access.bearer(request, room_id or None)
        except HubError:
            return False
        if action == "tasks.create":
            kind, _title = self.access.room_kind(
                room_id, None, self.rooms.rooms.get(room_id)
            )
            return is_allowed(kind, identity.role, "assign_task")
        return True

    async def close(self) -> None:
        for room in list(self.rooms.rooms.values()):
            for participant in list(room.participants.values()):
                await self.signaling.leave(participant, "removed")
        await self.camera_push.close()
        await self.camera_manager.close()
        await self.overdue.stop()
        self.store.close()


def _quiet_closed_connections(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Log aiortc's connection-setup tasks that fail because the participant
    left mid-setup as one INFO line; everything else goes to asyncio's
    default handler (an ERROR with the traceback)."""
    exc = context.get("exception")
    if isinstance(exc, InvalidStateError) or (
        isinstance(exc, ConnectionError) and "closed" in str(exc).lower()
    ):
        logger.info("connection setup ended because its peer left: %s", exc)
        return
    loop.default_exception_handler(context)


def create_app(
    config: Config, on_started: Callable[[], None] | None = None
) -> Starlette:
    """Build the application; `on_started` is called once start-up is done."""
    transcode_counter.install()
    codecs.install()
    ice.install(
        ice.IceSettings(
            host_addresses=list(config.ice.host_addresses),
            announce_addresses=list(config.ice.announce_addresses),
            udp_port_min=config.ice.udp_port_min,
            udp_port_max=config.ice.udp_port_max,
        )
    )
    hub = Hub(config)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(hub.stats.collect())

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "rooms": len(hub.rooms.rooms)})

    async def org_tree(request: Request) -> JSONResponse:
        org = hub.access.org
        if org is None:
            return JSONResponse({"units": []})
        units = [
            {
                "id": unit.id,
                "name": unit.name,
                "level": unit.level,
                "parent": unit.parent,
                "rooms": [
                    {"id": r.id, "name": r.name, "kind": r.kind.value}
                    for r in unit.rooms
                ],
            }
            for unit in org
        ]
        return JSONResponse({"root": org.root.id, "units": units})

    async def stats_page(request: Request) -> FileResponse:
        return FileResponse(STATIC_DIR / "stats.html")

    endpoint = SignalingEndpoint(
        hub.signaling,
        max_message_bytes=config.signaling.max_message_bytes,
        idle_timeout=config.signaling.idle_timeout,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(_quiet_closed_connections)
        await hub.start()
        logger.info("hub started")
        if on_started is not None:
            on_started()
        try:
            yield
        finally:
            await hub.close()
            logger.info("hub stopped")

    routes = [
        WebSocketRoute("/ws", endpoint),
        Route("/api/stats", stats),
        Route("/healthz", health),
        Route("/api/org", org_tree),
        Route("/stats", stats_page),
        *access_routes(hub.access, hub.rooms),
        *hub.camera_push.routes(hub.authorize),
        *snapshot_routes(hub.camera_manager, config.data_path),
        *camera_routes(
            hub.camera_registry,
            hub.camera_manager,
            hub.authorize_cameras,
            can_see=hub.can_see_camera,
        ),
        Mount(
            "/api",
            routes=dispatch_routes(
                hub.store,
                hub.records.notify,
                authorize=hub.authorize_dispatch,
                unit_rooms=hub.records.unit_rooms,
            ),
        ),
        Mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return app
