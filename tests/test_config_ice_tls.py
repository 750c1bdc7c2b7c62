"""Deployment settings as a command room meets them: the ICE candidates the
hub announces, its UDP port range, no public STUN by default, HTTPS with a
self-signed certificate, and clear errors for bad configuration."""

from __future__ import annotations

import ssl
import subprocess
import sys

import httpx
import pytest
import websockets
from aiortc import RTCPeerConnection
from aiortc.mediastreams import VideoStreamTrack

from hub.config import ConfigError, load_config
from media import ice
from tests.hubclient import HubClient
from tests.hubproc import free_port, run_hub


def _candidates(sdp: str) -> list[list[str]]:
    return [
        line.split()[:8] for line in sdp.splitlines() if line.startswith("a=candidate:")
    ]


async def _publish_offer(client: HubClient) -> str:
    pc = RTCPeerConnection(ice.rtc_configuration([]))
    pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answered = client.wait_for(lambda m: m["type"] in ("answer", "error"))
    await client.send({"type": "publish", "sdp": pc.localDescription.sdp})
    reply = await answered
    await pc.close()
    assert reply["type"] == "answer", reply
    return reply["sdp"]


async def test_answer_announces_configured_address_and_ports(tmp_path):
    settings = """announce_addresses = ["203.0.113.7"]
udp_port_min = 42100
udp_port_max = 42120"""
    with run_hub(tmp_path, ice=settings) as hub:
        client = HubClient(hub.ws_url, "nat-1", "思茅区指挥室")
        await client.join()
        answer = await _publish_offer(client)
        await client.close()
    candidates = _candidates(answer)
    assert candidates, answer
    for fields in candidates:
        assert fields[4] == "203.0.113.7"
        assert 42100 <= int(fields[5]) <= 42120
        assert fields[7] == "host"


async def test_default_configuration_names_no_stun_server(hub):
    client = HubClient(hub.ws_url, "stun-1", "宁洱县指挥室")
    joined = await client.join()
    assert joined["iceServers"] == []
    answer = await _publish_offer(client)
    await client.close()
    assert "srflx" not in answer
    assert "relay" not in answer
    assert load_config().ice.servers == []


def test_hub_cert_then_https(tmp_path):
    config = tmp_path / "cert.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub.cli",
            "cert",
            "--config",
            str(config),
            "--name",
            "127.0.0.1",
            "--name",
            "hub.local",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    cert = tmp_path / "tls" / "hub-cert.pem"
    key = tmp_path / "tls" / "hub-key.pem"
    assert str(cert) in result.stdout
    assert key.stat().st_mode & 0o077 == 0
    server = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    with run_hub(tmp_path / "run", server=server, scheme="https") as hub:
        context = ssl.create_default_context(cafile=str(cert))
        reply = httpx.get(f"{hub.url}/healthz", verify=context)
        assert reply.status_code == 200
        page = httpx.get(f"{hub.url}/", verify=context)
        assert page.status_code == 200
        with pytest.raises(httpx.ConnectError):
            # Without the certificate a client must not trust the hub.
            httpx.get(f"{hub.url}/healthz")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[ice]\nudp_port_min = 5000\nudp_port_max = 4000\n", "do not form a range"),
        ('[server]\ntls_cert = "a.pem"\n', "must be set together"),
        ('[server]\nport = "eighty"\n', "server.port must be a number"),
        ("[sever]\nport = 1\n", "unknown section"),
        ("[media]\nmax_queue = 3\n", "unknown setting media.max_queue"),
        ("[server\n", "configuration file"),
    ],
)
def test_bad_configuration_is_named(tmp_path, text, expected):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_cli_reports_bad_configuration(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[ice]\nudp_port_min = 5000\nudp_port_max = 4000\n")
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "ice.udp_port_min=5000" in result.stderr


def test_cli_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("serve", "cert", "db", "token"):
        assert command in result.stdout


async def test_websocket_over_tls_needs_trust(tmp_path):
    config = tmp_path / "cert.toml"
    config.write_text(f'[server]\ndata_dir = "{tmp_path}"\n')
    subprocess.run(
        [sys.executable, "-m", "hub.cli", "cert", "--config", str(config)],
        capture_output=True,
        check=True,
    )
    cert = tmp_path / "tls" / "hub-cert.pem"
    key = tmp_path / "tls" / "hub-key.pem"
    server = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    with run_hub(tmp_path / "run", server=server, scheme="https") as hub:
        context = ssl.create_default_context(cafile=str(cert))
        async with websockets.connect(hub.ws_url, ssl=context) as ws:
            await ws.send('{"type": "ping"}')
            assert "pong" in await ws.recv()


async def test_taken_port_fails_before_touching_records(tmp_path):
    with run_hub(tmp_path) as hub:
        client = HubClient(hub.ws_url, "busy-1", "思茅区指挥室")
        await client.join()
        try:
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "hub.cli",
                    "serve",
                    "--config",
                    str(hub.config_path),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 2
            assert f"cannot listen on 127.0.0.1:{hub.port}" in result.stderr
            assert "Traceback" not in result.stderr
            sessions = httpx.get(f"{hub.url}/api/sessions?room=busy-1").json()
            assert sessions["sessions"][0]["ended_at"] is None
        finally:
            await client.close()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ('[server]\ntls_cert = "nope.pem"\ntls_key = "nope.key"\n', "nope.pem"),
        ('[database]\nurl = "mysql://x"\n', "unsupported database URL"),
        ('[org]\nfile = "missing-org.toml"\n', "missing-org.toml"),
    ],
)
def test_serve_reports_bad_settings_without_traceback(tmp_path, settings, expected):
    path = tmp_path / "bad.toml"
    # Each case ends in its own table, or none: the port goes into [server].
    if "[server]" in settings:
        path.write_text(settings + f"port = {free_port()}\n")
    else:
        path.write_text(settings + f"\n[server]\nport = {free_port()}\n")
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
