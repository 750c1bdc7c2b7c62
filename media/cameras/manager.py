"""CameraManager: the feeds of all registered cameras, created on demand."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from media.cameras.ingest import CameraFeed, IngestSettings, StreamStatus
from media.cameras.providers import StreamProvider, default_providers
from media.cameras.registry import STREAMS, CameraRegistry, InvalidCamera
from media.cameras.snapshot import Snapshot, SnapshotCache

logger = logging.getLogger(__name__)


class CameraManager:
    """Owns one `CameraFeed` per camera stream and follows registry changes.

    Must be used from one event loop. A feed object stays the same for the
    manager's life unless its camera is deleted, so callers may keep it.
    """

    def __init__(
        self,
        registry: CameraRegistry,
        settings: IngestSettings | None = None,
        providers: dict[str, StreamProvider] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings or IngestSettings.from_table(registry.ingest)
        self.providers = providers or default_providers()
        self.snapshots = SnapshotCache(self.settings.snapshot_cache)
        self._feeds: dict[tuple[str, str], CameraFeed] = {}
        self._background: set[asyncio.Task[None]] = set()
        registry.listeners.append(self._on_registry_change)

    def feed(self, camera_id: str, stream: str = "main") -> CameraFeed:
        """Return the feed of a camera stream (not started until used).

        Raises CameraNotFound for an unknown camera, InvalidCamera for a bad
        stream name or a disabled camera.
        """
        if stream not in STREAMS:
            raise InvalidCamera(
                f"stream must be one of {', '.join(STREAMS)}, got {stream!r}"
            )
        camera = self.registry.get(camera_id)
        if not camera.enabled:
            raise InvalidCamera(
                f"camera {camera_id!r} is disabled; set enabled to true to view it"
            )
        key = (camera_id, stream)
        feed = self._feeds.get(key)
        if feed is None:
            provider = self.providers.get(camera.provider)
            if provider is None:
                raise InvalidCamera(
                    f"camera {camera_id!r} uses provider {camera.provider!r}, which "
                    f"is not configured; available: {', '.join(self.providers)}"
                )
            feed = CameraFeed(camera, stream, provider, self.settings)
            self._feeds[key] = feed
        return feed

    def status(self, camera_id: str) -> dict[str, StreamStatus]:
        """Status of each stream of a camera; an unused stream shows "idle"."""
        camera = self.registry.get(camera_id)
        result = {}
        for stream in STREAMS:
            feed = self._feeds.get((camera_id, stream))
            if feed is not None:
                result[stream] = feed.status()
            elif stream == "main" or camera.sub_url:
                result[stream] = StreamStatus(camera_id=camera_id, stream=stream)
        return result

    def status_dicts(self, camera_id: str) -> dict[str, dict[str, Any]]:
        return {name: item.to_dict() for name, item in self.status(camera_id).items()}

    async def snapshot(self, camera_id: str, stream: str | None = None) -> Snapshot:
        """Return a JPEG of the camera's current picture (sub stream by default
        when the camera has one, as it is cheaper to decode)."""
        camera = self.registry.get(camera_id)
        if stream is None:
            stream = "sub" if camera.sub_url else "main"
        feed = self.feed(camera_id, stream)
        await feed.wait_ready()
        return await self.snapshots.get(camera_id, stream, feed.gop_snapshot())

    async def close(self) -> None:
        """Stop every feed."""
        if self._on_registry_change in self.registry.listeners:
            self.registry.listeners.remove(self._on_registry_change)
        feeds = list(self._feeds.values())
        self._feeds.clear()
        await asyncio.gather(*(feed.close() for feed in feeds))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def _on_registry_change(self, action: str, camera_id: str) -> None:
        self.snapshots.forget(camera_id)
        for stream in STREAMS:
            feed = self._feeds.get((camera_id, stream))
            if feed is None:
                continue
            if action == "deleted":
                del self._feeds[(camera_id, stream)]
                self._spawn(feed.close())
            elif action == "updated":
                camera = self.registry.get(camera_id)
                if not camera.enabled:
                    del self._feeds[(camera_id, stream)]
                    self._spawn(feed.close())
                else:
                    self._spawn(feed.set_camera(camera))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
