"""Start `hub serve` as a user would, in a subprocess, on a free port with a
temporary configuration, and wait until it answers."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent

# One scale for every wait in the suite; raise it on a slow machine.
TIMEOUT_SCALE = float(os.environ.get("HUB_TEST_TIMEOUT_SCALE", "1"))


def scaled(seconds: float) -> float:
    return seconds * TIMEOUT_SCALE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class HubProcess:
    url: str
    ws_url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    config_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def write_config(
    folder: Path,
    port: int,
    extra: str = "",
    idle_timeout: float = 30,
    ice: str = "",
    server: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hub-test.toml"
    # The sample org tree, unless the caller brings its own [org] table.
    org = (
        ""
        if "[org]" in extra
        else f'[org]\nfile = "{REPO / "configs" / "org-puer.toml"}"\n'
    )
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}
data_dir = "{folder / "data"}"
{server}

[ice]
host_addresses = ["127.0.0.1"]
{ice}

{org}
[signaling]
idle_timeout = {idle_timeout}
{extra}
""",
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def run_hub(
    folder: Path,
    extra_config: str = "",
    env: dict | None = None,
    idle_timeout: float = 30,
    ice: str = "",
    server: str = "",
    scheme: str = "http",
):
    """Run `hub serve`; `ice` and `server` are extra lines for those tables."""
    port = free_port()
    config = write_config(folder, port, extra_config, idle_timeout, ice, server)
    log_path = folder / "hub.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"{scheme}://127.0.0.1:{port}"
    ws_scheme = "wss" if scheme == "https" else "ws"
    hub = HubProcess(
        url, f"{ws_scheme}://127.0.0.1:{port}/ws", port, process, log_path, config
    )
    try:
        deadline = time.monotonic() + scaled(30)
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"hub exited with {process.returncode}:\n{hub.log()}"
                )
            try:
                reply = httpx.get(f"{url}/healthz", timeout=1, verify=False)
                if reply.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub did not answer within 30 s:\n{hub.log()}")
            time.sleep(0.1)
        yield hub
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
