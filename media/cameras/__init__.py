"""Surveillance camera feeds (雪亮工程, 公安天眼 and other networks) for the hub.

`build_camera_service(config)` loads the registry and returns it with a
`CameraManager`. `manager.feed(camera_id, stream)` gives a `CameraFeed`: its
`codec` and `add_sink()` connect it to an up track of the relay. See
docs/cameras.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from media.cameras.ingest import CameraFeed, FeedOffline, IngestSettings, StreamStatus
from media.cameras.manager import CameraManager
from media.cameras.providers import StreamProvider, StreamSource, UrlProvider
from media.cameras.registry import (
    Camera,
    CameraError,
    CameraNotFound,
    CameraRegistry,
    InvalidCamera,
    load_registry,
)

if TYPE_CHECKING:
    from hub.config import Config

__all__ = [
    "Camera",
    "CameraError",
    "CameraFeed",
    "CameraManager",
    "CameraNotFound",
    "CameraRegistry",
    "FeedOffline",
    "IngestSettings",
    "InvalidCamera",
    "StreamProvider",
    "StreamSource",
    "StreamStatus",
    "UrlProvider",
    "build_camera_service",
    "load_registry",
]

STORE_NAME = "cameras.json"


def build_camera_service(config: Config) -> tuple[CameraRegistry, CameraManager]:
    """Load cameras.file (or its saved copy in the data folder) and make the
    manager. Call from inside the running event loop's start-up."""
    store = config.data_path / STORE_NAME
    # Without a camera file, cameras come only from the admin API (the store).
    toml = config.resolve(config.cameras.file) if config.cameras.file else None
    registry = load_registry(toml, store)
    return registry, CameraManager(registry)
