"""Load the hub's configuration from a TOML file and the environment."""

from __future__ import annotations

import os
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "default.toml"


class ConfigError(ValueError):
    """A configuration value is missing or invalid."""


@dataclass
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    tls_cert: str = ""
    tls_key: str = ""
    data_dir: str = "var"
    # Name of this hub process in shared records; empty means "host:port".
    instance: str = ""


@dataclass
class IceConfig:
    host_addresses: list[str] = field(default_factory=list)
    announce_addresses: list[str] = field(default_factory=list)
    udp_port_min: int = 0
    udp_port_max: int = 0
    servers: list[IceServer] = field(default_factory=list)


@dataclass
class MediaConfig:
    max_down_backlog_bytes: int = 262144
    keyframe_request_interval: float = 0.5
    nack_history: int = 512


@dataclass
class SignalingConfig:
    max_message_bytes: int = 65536
    idle_timeout: float = 30.0


@dataclass
class DatabaseConfig:
    url: str = ""


@dataclass
class BusConfig:
    redis_url: str = ""


@dataclass
class AuthConfig:
    required: bool = False
    secret: str = ""


@dataclass
class FileConfig:
    file: str = ""


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ice: IceConfig = field(default_factory=IceConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    signaling: SignalingConfig = field(default_factory=SignalingConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    org: FileConfig = field(default_factory=FileConfig)
    cameras: FileConfig = field(default_factory=FileConfig)
    # Folder that relative paths in the file are resolved against.
    base_dir: Path = field(default_factory=lambda: DEFAULT_CONFIG.parent.parent)

    @property
    def data_path(self) -> Path:
        return self.resolve(self.server.data_dir)

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.data_path / 'hub.sqlite3'}"

    @property
    def instance_name(self) -> str:
        if self.server.instance:
            return self.server.instance
        return f"{socket.gethostname()}:{self.server.port}"

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.base_dir / candidate


def _build(cls: type, section: str, values: Any) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"[{section}] must be a table, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(
                f"unknown setting {section}.{key}; "
                f"expected one of: {', '.join(sorted(known))}"
            )
        default = getattr(cls(), key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"{section}.{key} must be true or false, got {value!r}"
                )
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{section}.{key} must be a number, got {value!r}")
            value = type(default)(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{section}.{key} must be a string, got {value!r}")
        elif isinstance(default, list) and not isinstance(value, list):
            raise ConfigError(f"{section}.{key} must be a list, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _ice_servers(raw: list[Any]) -> list[IceServer]:
    servers = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict) or "urls" not in entry:
            raise ConfigError(
                f"ice.servers[{index}] must be a table with 'urls', got {entry!r}"
            )
        urls = entry["urls"]
        if isinstance(urls, str):
            urls = [urls]
        servers.append(
            IceServer(
                urls=list(urls),
                username=entry.get("username"),
                credential=entry.get("credential"),
            )
        )
    return servers


def load_config(path: str | Path | None = None) -> Config:
    """Read the TOML file at `path` (the bundled default if None) and apply
    environment overrides: HUB_AUTH_SECRET, HUB_DATABASE_URL, HUB_REDIS_URL,
    HUB_HOST, HUB_PORT, HUB_DATA_DIR."""
    file_path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = tomllib.loads(file_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {str(file_path)!r} not found; "
            "pass an existing file with --config"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {str(file_path)!r}: {exc}") from None

    sections = {
        "server": ServerConfig,
        "ice": IceConfig,
        "media": MediaConfig,
        "signaling": SignalingConfig,
        "database": DatabaseConfig,
        "bus": BusConfig,
        "auth": AuthConfig,
        "org": FileConfig,
        "cameras": FileConfig,
    }
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(
            f"unknown section(s) {sorted(unknown)} in {str(file_path)!r}; "
            f"expected: {', '.join(sections)}"
        )
    kwargs: dict[str, Any] = {}
    for name, cls in sections.items():
        values = dict(raw.get(name, {}))
        servers = values.pop("servers", []) if name == "ice" else None
        kwargs[name] = _build(cls, name, values)
        if servers is not None:
            kwargs[name].servers = _ice_servers(servers)
    base_dir = file_path.resolve().parent
    if base_dir.name == "configs":
        base_dir = base_dir.parent
    config = Config(**kwargs, base_dir=base_dir)

    env = os.environ
    if env.get("HUB_AUTH_SECRET"):
        config.auth.secret = env["HUB_AUTH_SECRET"]
    if env.get("HUB_DATABASE_URL"):
        config.database.url = env["HUB_DATABASE_URL"]
    if env.get("HUB_REDIS_URL"):
        config.bus.redis_url = env["HUB_REDIS_URL"]
    if env.get("HUB_HOST"):
        config.server.host = env["HUB_HOST"]
    if env.get("HUB_PORT"):
        try:
            config.server.port = int(env["HUB_PORT"])
        except ValueError:
            raise ConfigError(
                f"HUB_PORT must be a port number, got {env['HUB_PORT']!r}"
            ) from None
    if env.get("HUB_DATA_DIR"):
        config.server.data_dir = env["HUB_DATA_DIR"]
    _check(config)
    return config


def _check(config: Config) -> None:
    ice = config.ice
    if (ice.udp_port_min or ice.udp_port_max) and not (
        0 < ice.udp_port_min <= ice.udp_port_max < 65536
    ):
        raise ConfigError(
            f"ice.udp_port_min={ice.udp_port_min} and ice.udp_port_max="
            f"{ice.udp_port_max} do not form a range; set 1 <= min <= max <= 65535 "
            "or both to 0"
        )
    if bool(config.server.tls_cert) != bool(config.server.tls_key):
        raise ConfigError(
            "server.tls_cert and server.tls_key must be set together "
            "(or both left empty for plain HTTP)"
        )
    if not 0 < config.server.port < 65536:
        raise ConfigError(f"server.port must be 1-65535, got {config.server.port}")
