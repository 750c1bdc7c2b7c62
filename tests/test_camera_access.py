"""Who may see and push which camera when the hub requires tokens: a unit
sees its own cameras and those of the units below it, and nothing else."""

from __future__ import annotations

import datetime

import httpx
import pytest

from hub.auth import mint_token
from tests.hubclient import HubClient
from tests.hubproc import run_hub

SECRET = "k" * 40
CAMERAS = """
[[camera]]
id = "53080200001320000101"
name = "南屏镇政府门口"
network = "xueliang"
unit = "puer.simao.nanping"
location = "南屏镇政府大门"
main_url = "rtsp://127.0.0.1:9/simao"

[[camera]]
id = "53082400001320000201"
name = "景谷县城客运站"
network = "tianyan"
unit = "puer.jinggu"
location = "景谷县城客运站广场"
main_url = "rtsp://127.0.0.1:9/jinggu"
"""
SIMAO_CAMERA = "53080200001320000101"
JINGGU_CAMERA = "53082400001320000201"


def _token(unit: str, role: str, room: str | None = None) -> str:
    return mint_token(
        SECRET, "test.user", unit, role, room=room, ttl=datetime.timedelta(hours=1)
    )


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def secured_hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured")
    cameras = folder / "cameras.toml"
    cameras.write_text(CAMERAS, encoding="utf-8")
    extra = f'[auth]\nrequired = true\n\n[cameras]\nfile = "{cameras}"\n'
    with run_hub(folder, extra_config=extra, env={"HUB_AUTH_SECRET": SECRET}) as hub:
        yield hub


def test_unit_sees_own_and_lower_cameras_only(secured_hub):
    url = f"{secured_hub.url}/api/cameras"
    simao = httpx.get(url, headers=_auth(_token("puer.simao", "dispatcher")))
    assert simao.status_code == 200
    assert [c["id"] for c in simao.json()["cameras"]] == [SIMAO_CAMERA]

    city = httpx.get(url, headers=_auth(_token("puer", "dispatcher")))
    assert sorted(c["id"] for c in city.json()["cameras"]) == sorted(
        [SIMAO_CAMERA, JINGGU_CAMERA]
    )

    township = httpx.get(url, headers=_auth(_token("puer.simao.nanping", "member")))
    assert [c["id"] for c in township.json()["cameras"]] == [SIMAO_CAMERA]

    hidden = httpx.get(
        f"{url}/{JINGGU_CAMERA}", headers=_auth(_token("puer.simao", "dispatcher"))
    )
    assert hidden.status_code == 404


def test_camera_api_needs_a_token_and_a_role(secured_hub):
    url = f"{secured_hub.url}/api/cameras"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"

    party = httpx.get(
        url, headers=_auth(_token("puer", "party", room="puer-mediation"))
    )
    assert party.status_code == 403

    member_create = httpx.post(
        url,
        json={
            "id": "53080200001320000999",
            "name": "新摄像机",
            "network": "other",
            "unit": "puer.simao",
            "main_url": "rtsp://127.0.0.1:9/new",
        },
        headers=_auth(_token("puer.simao", "member")),
    )
    assert member_create.status_code == 403


async def test_push_of_another_units_camera_is_refused(secured_hub):
    room = "simao-hall"
    client = HubClient(
        secured_hub.ws_url,
        room,
        "思茅区指挥室",
        token=_token("puer.simao", "chair", room),
    )
    joined = await client.join()
    assert joined["type"] == "joined", joined
    try:
        other_unit = httpx.post(
            f"{secured_hub.url}/api/rooms/{room}/cameras",
            json={"camera": JINGGU_CAMERA},
            headers=_auth(_token("puer.simao", "dispatcher")),
        )
        assert other_unit.status_code == 404
        assert "puer.simao" in other_unit.json()["message"]

        anonymous = httpx.post(
            f"{secured_hub.url}/api/rooms/{room}/cameras", json={"camera": SIMAO_CAMERA}
        )
        assert anonymous.status_code == 401

        viewer = httpx.post(
            f"{secured_hub.url}/api/rooms/{room}/cameras",
            json={"camera": SIMAO_CAMERA},
            headers=_auth(_token("puer.simao", "viewer")),
        )
        assert viewer.status_code == 403
        assert viewer.json()["error"] == "forbidden"
        assert client.tracks == []
    finally:
        await client.close()
