"""Run the hub under uvicorn."""

from __future__ import annotations

import logging

import uvicorn

from hub.app import create_app
from hub.config import Config

logger = logging.getLogger(__name__)


def serve(config: Config) -> int:
    app = create_app(config)
    tls = bool(config.server.tls_cert)
    scheme = "https" if tls else "http"
    host = config.server.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(
        f"Hub listening: open {scheme}://{shown}:{config.server.port}/ in a browser",
        flush=True,
    )
    if not tls and host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "Note: browsers allow camera and microphone only on https:// or "
            "localhost; run `hub cert` and set server.tls_cert and server.tls_key "
            "for other rooms.",
            flush=True,
        )
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=config.server.port,
        ssl_certfile=str(config.resolve(config.server.tls_cert)) if tls else None,
        ssl_keyfile=str(config.resolve(config.server.tls_key)) if tls else None,
        log_config=None,
        ws_max_size=config.signaling.max_message_bytes * 4,
        lifespan="on",
    )
    server = uvicorn.Server(uv_config)
    server.run()
    return 0
