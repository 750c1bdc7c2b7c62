"""Camera registry: the cameras the hub may show, from configs/cameras.toml.

The TOML file is the seed. Once a camera is created, updated or deleted
through the admin API, the whole list is written to a JSON file in the data
folder, and that file is read instead of the TOML on later starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hub.errors import Conflict, HubError, NotFound

logger = logging.getLogger(__name__)

NETWORKS = ("xueliang", "tianyan", "other")
NETWORK_LABELS = {"xueliang": "雪亮工程", "tianyan": "公安天眼", "other": "其他"}
STREAMS = ("main", "sub")
TRANSPORTS = ("tcp", "udp")
PROVIDERS = ("url", "gb28181", "platform")
PASSWORD_MASK = "******"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UNIT_PATTERN = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "srt", "udp", "file")
MAX_TEXT = 200


class CameraError(HubError):
    """Base of camera errors; `code` is the stable error code for clients."""

    code = "camera-error"


class InvalidCamera(CameraError):
    """A camera field, stream name or camera file is invalid."""

    code = "invalid-camera"


class CameraNotFound(NotFound, CameraError):
    pass


class CameraExists(Conflict, CameraError):
    pass


@dataclass
class Camera:
    """One camera. `main_url`/`sub_url` never contain credentials."""

    id: str
    name: str
    network: str = "other"
    unit: str = ""
    location: str = ""
    main_url: str = ""
    sub_url: str = ""
    username: str = ""
    password: str = ""
    # Environment variable holding the password, so a real one stays out of
    # files under version control. Used when `password` is empty.
    password_env: str = ""
    transport: str = "tcp"
    provider: str = "url"
    enabled: bool = True

    def url(self, stream: str) -> str:
        """Return the URL of `stream`; the sub stream falls back to the main one."""
        if stream not in STREAMS:
            raise InvalidCamera(
                f"stream must be one of {', '.join(STREAMS)}, got {stream!r}"
            )
        if stream == "sub" and self.sub_url:
            return self.sub_url
        return self.main_url

    def secret(self) -> str:
        """Return the password, reading `password_env` when `password` is empty."""
        if self.password:
            return self.password
        if self.password_env:
            return os.environ.get(self.password_env, "")
        return ""

    def public(self) -> dict[str, Any]:
        """Return the camera as shown to API clients: the password masked."""
        data = asdict(self)
        data["password"] = PASSWORD_MASK if self.secret() else ""
        data["network_label"] = NETWORK_LABELS[self.network]
        data["main_url"] = redact_url(self.main_url)
        data["sub_url"] = redact_url(self.sub_url)
        return data

    def stored(self) -> dict[str, Any]:
        return asdict(self)


def redact_url(url: str) -> str:
    """Remove any user:password@ part from a URL, for logs and API output."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _check_url(camera_id: str, name: str, url: str, required: bool) -> None:
    if not url:
        if required:
            raise InvalidCamera(
                f"camera {camera_id!r}: {name} is missing; set it to the stream "
                "URL, e.g. rtsp://192.0.2.10:554/Streaming/Channels/101"
            )
        return
    if len(url) > 1000:
        raise InvalidCamera(f"camera {camera_id!r}: {name} is longer than 1000 chars")
    if url.startswith("/"):
        return  # a local file, as PyAV opens it
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidCamera(f"camera {camera_id!r}: {name} is invalid: {exc}") from None
    if parts.scheme not in URL_SCHEMES:
        raise InvalidCamera(
            f"camera {camera_id!r}: {name} scheme must be one of "
            f"{', '.join(URL_SCHEMES)}, got {parts.scheme!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidCamera(
            f"camera {camera_id!r}: {name} contains credentials; remove "
            "user:password@ from the URL and set username and password instead"
        )


def _check_field_types(camera_id: str, data: dict[str, Any]) -> None:
    for spec in fields(Camera):
        if spec.name not in data:
            continue
        value = data[spec.name]
        expected = bool if spec.type in ("bool", bool) else str
        if not isinstance(value, expected):
            kind = "boolean" if expected is bool else "string"
            raise InvalidCamera(
                f"camera {camera_id!r}: {spec.name} must be a {kind}, got {value!r}"
            )
        too_long = isinstance(value, str) and len(value) > MAX_TEXT
        if too_long and spec.name not in ("main_url", "sub_url"):
            raise InvalidCamera(
                f"camera {camera_id!r}: {spec.name} is longer than {MAX_TEXT} "
                "characters"
            )


def validate_camera(data: dict[str, Any]) -> Camera:
    """Build a Camera from a mapping, raising InvalidCamera on any bad field."""
    if not isinstance(data, dict):
        raise InvalidCamera(f"a camera must be a table or object, got {data!r}")
    known = {f.name: f for f in fields(Camera)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InvalidCamera(
            f"unknown camera field(s) {unknown}; expected: {', '.join(known)}"
        )
    camera_id = data.get("id")
    if not isinstance(camera_id, str) or not ID_PATTERN.match(camera_id):
        raise InvalidCamera(
            "camera id must be 1-64 letters, digits, '.', '_' or '-' starting "
            f"with a letter or digit, got {camera_id!r}"
        )
    _check_field_types(camera_id, data)
    missing = [
        f.name
        for f in fields(Camera)
        if f.name not in data and f.default is MISSING and f.default_factory is MISSING  # type: ignore[misc]
    ]
    if missing:
        raise InvalidCamera(
            f"camera {camera_id!r}: missing field(s) {', '.join(missing)}; "
            "send them with the camera"
        )

    camera = Camera(**data)
    if not camera.name.strip():
        raise InvalidCamera(f"camera {camera_id!r}: name is missing")
    if camera.network not in NETWORKS:
        raise InvalidCamera(
            f"camera {camera_id!r}: network must be one of {', '.join(NETWORKS)}, "
            f"got {camera.network!r}"
        )
    if camera.unit and not UNIT_PATTERN.match(camera.unit):
        raise InvalidCamera(
            f"camera {camera_id!r}: unit must be a dotted org id such as "
            f"'puer.simao.nanping', got {camera.unit!r}"
        )
    if camera.transport not in TRANSPORTS:
        raise InvalidCamera(
            f"camera {camera_id!r}: transport must be one of "
            f"{', '.join(TRANSPORTS)}, got {camera.transport!r}"
        )
    if camera.password_env and not re.match(r"^[A-Z_][A-Z0-9_]*$", camera.password_env):
        raise InvalidCamera(
            f"camera {camera_id!r}: password_env must be an environment variable "
            f"name such as CAMERA_PASSWORD, got {camera.password_env!r}"
        )

    if camera.provider not in PROVIDERS:
        raise InvalidCamera(
            f"camera {camera_id!r}: provider must be one of {', '.join(PROVIDERS)}, "
            f"got {camera.provider!r}"
        )
    _check_url(
        camera_id, "main_url", camera.main_url, required=camera.provider == "url"
    )
    _check_url(camera_id, "sub_url", camera.sub_url, required=False)
    return camera


ChangeListener = Callable[[str, str], None]


@dataclass
class CameraRegistry:
    """The cameras by id, with optional persistence to `store_path` (JSON).

    Listeners are called as listener(action, camera_id) after each change,
    with action "created", "updated" or "deleted".
    """

    cameras: dict[str, Camera] = field(default_factory=dict)
    store_path: Path | None = None
    ingest: dict[str, Any] = field(default_factory=dict)
    listeners: list[ChangeListener] = field(default_factory=list)

    @classmethod
    def from_list(
        cls,
        items: Iterable[dict[str, Any]],
        store_path: Path | None = None,
        ingest: dict[str, Any] | None = None,
    ) -> CameraRegistry:
        registry = cls(store_path=store_path, ingest=dict(ingest or {}))
        for item in items:
            camera = validate_camera(item)
            if camera.id in registry.cameras:
                raise InvalidCamera(f"camera id {camera.id!r} is listed twice")
            registry.cameras[camera.id] = camera
        return registry

    def list(self) -> list[Camera]:
        return sorted(self.cameras.values(), key=lambda camera: camera.id)

    def get(self, camera_id: str) -> Camera:
        try:
            return self.cameras[camera_id]
        except KeyError:
            raise CameraNotFound(
                f"camera {camera_id!r} not found; list cameras with GET /api/cameras"
            ) from None

    def create(self, data: dict[str, Any]) -> Camera:
        camera = validate_camera(data)
        if camera.id in self.cameras:
            raise CameraExists(
                f"camera {camera.id!r} already exists; use PUT to change it"
            )
        self.cameras[camera.id] = camera
        self._changed("created", camera.id)
        return camera

    def update(self, camera_id: str, data: dict[str, Any]) -> Camera:
        """Change the fields given in `data`. A missing password, or the mask
        shown by the API, keeps the stored password."""
        current = self.get(camera_id)
        if not isinstance(data, dict):
            raise InvalidCamera(f"camera update must be an object, got {data!r}")
        if data.get("id", camera_id) != camera_id:
            raise InvalidCamera(
                f"camera id cannot change (from {camera_id!r} to {data['id']!r}); "
                "delete the camera and create a new one"
            )
        merged = current.stored()
        merged.update(data)
        if data.get("password") == PASSWORD_MASK:
            merged["password"] = current.password
        camera = validate_camera(merged)
        if camera == current:
            return camera
        self.cameras[camera_id] = camera
        self._changed("updated", camera_id)
        return camera

    def delete(self, camera_id: str) -> None:
        self.get(camera_id)
        del self.cameras[camera_id]
        self._changed("deleted", camera_id)

    def _changed(self, action: str, camera_id: str) -> None:
        logger.info("camera=%s %s", camera_id, action)
        self.save()
        for listener in list(self.listeners):
            listener(action, camera_id)

    def save(self) -> None:
        """Write every camera to `store_path` atomically, readable by its owner only."""
        if self.store_path is None:
            # NOTE: without a store path, API changes live only in memory and
            # are lost at restart.
            logger.warning("camera registry has no store path; changes are not saved")
            return
        self.store_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "cameras": [camera.stored() for camera in self.list()],
        }
        temporary = self.store_path.with_suffix(".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=2)
        os.replace(temporary, self.store_path)


def load_registry(
    toml_path: str | Path | None, store_path: str | Path | None = None
) -> CameraRegistry:
    """Load the registry: from `store_path` if that JSON file exists, else from
    the TOML file (none: no cameras). The TOML's [ingest] table is kept in
    `registry.ingest`."""
    toml_file = Path(toml_path) if toml_path is not None else None
    try:
        raw = (
            tomllib.loads(toml_file.read_text(encoding="utf-8"))
            if toml_file is not None
            else {}
        )
    except FileNotFoundError:
        raise InvalidCamera(
            f"camera file {str(toml_file)!r} not found; set cameras.file in the "
            "hub configuration to an existing file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidCamera(f"camera file {str(toml_file)!r}: {exc}") from None
    unknown = sorted(set(raw) - {"ingest", "camera"})
    if unknown:
        raise InvalidCamera(
            f"unknown table(s) {unknown} in {str(toml_file)!r}; "
            "expected [ingest] and [[camera]]"
        )
    ingest = raw.get("ingest", {})
    items = raw.get("camera", [])
    if not isinstance(items, list):
        raise InvalidCamera(f"{str(toml_file)!r}: cameras must be [[camera]] tables")

    store = Path(store_path) if store_path else None
    if store is not None and store.exists():
        try:
            stored = json.loads(store.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidCamera(
                f"camera store {str(store)!r} cannot be read: {exc}; fix or remove "
                "it to start again from the TOML file"
            ) from None
        items = stored.get("cameras", []) if isinstance(stored, dict) else None
        if not isinstance(items, list):
            raise InvalidCamera(f"camera store {str(store)!r} has no 'cameras' list")
        logger.info("loading cameras from %s (it overrides %s)", store, toml_file)
    return CameraRegistry.from_list(items, store_path=store, ingest=ingest)
