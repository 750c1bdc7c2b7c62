"""Run the hub under uvicorn."""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn

from hub.app import create_app
from hub.config import Config, ConfigError
from hub.errors import HubError

logger = logging.getLogger(__name__)


def _listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything else starts, so a taken port
    fails at once and touches no records."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP (not 0) makes asyncio set TCP_NODELAY on accepted sockets;
    # without it a signaling reply waits for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; stop the process "
            "that uses it or choose another port with --port"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _check_files(config: Config) -> None:
    for name in ("tls_cert", "tls_key"):
        value = getattr(config.server, name)
        if value and not config.resolve(value).is_file():
            raise ConfigError(
                f"server.{name} file {str(config.resolve(value))!r} not found; "
                "run `hub cert` or fix the path"
            )


def serve(config: Config) -> int:
    tls = bool(config.server.tls_cert)
    host = config.server.host
    try:
        _check_files(config)
        sock = _listen(host, config.server.port)
        app = create_app(config, on_started=lambda: _announce(config))
    except (ConfigError, HubError, ValueError) as exc:
        # ValueError: a database URL that SQLAlchemy or the store rejects.
        print(f"hub: {exc}", file=sys.stderr)
        return 2
    uv_config = uvicorn.Config(
        app,
        ssl_certfile=str(config.resolve(config.server.tls_cert)) if tls else None,
        ssl_keyfile=str(config.resolve(config.server.tls_key)) if tls else None,
        log_config=None,
        ws_max_size=config.signaling.max_message_bytes * 4,
        lifespan="on",
    )
    server = uvicorn.Server(uv_config)
    server.run(sockets=[sock])
    return 0 if server.started else 1


def _announce(config: Config) -> None:
    tls = bool(config.server.tls_cert)
    scheme = "https" if tls else "http"
    host = config.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"{scheme}://{shown}:{config.server.port}/"
    print(f"Hub listening: open {url} in a browser", flush=True)
    if not tls and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "Note: browsers allow camera and microphone only on https:// or "
            "localhost; run `hub cert` and set server.tls_cert and server.tls_key "
            "for other rooms.",
            flush=True,
        )
