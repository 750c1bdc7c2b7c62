"""Records kept by a running hub: a session record per room with who took
part, task events pushed live into the rooms concerned, and a camera
snapshot stored for a task."""

from __future__ import annotations

import asyncio
import datetime
import time

import httpx
import pytest

from tests.hubclient import HubClient
from tests.hubproc import run_hub, scaled
from tests.rtsp_server import CLIP, GstRtspServer, gstreamer_available
from tests.sessionclient import AUTH_CONFIG, join_as, request
from tests.test_camera_push import CAMERA_ID, _cameras_file


async def _eventually(check, timeout: float, what: str):
    deadline = time.monotonic() + scaled(timeout)
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_session_record_lists_attendance(hub):
    a = HubClient(hub.ws_url, "rec-1", "普洱市指挥中心")
    b = HubClient(hub.ws_url, "rec-1", "墨江县指挥室")
    await a.join()
    await b.join()
    await b.send({"type": "leave"})
    await a.send({"type": "leave"})
    await a.close()
    await b.close()

    def ended_session():
        sessions = httpx.get(f"{hub.url}/api/sessions?room=rec-1").json()["sessions"]
        return sessions if sessions and sessions[0]["ended_at"] else None

    sessions = await _eventually(ended_session, 10, "the session record to close")
    assert len(sessions) == 1
    assert sessions[0]["kind"] == "joint"
    assert sessions[0]["host"] == "普洱市指挥中心"
    rows = httpx.get(f"{hub.url}/api/sessions/{sessions[0]['id']}/attendance").json()
    rows = rows["attendance"]
    assert sorted(r["display_name"] for r in rows) == ["墨江县指挥室", "普洱市指挥中心"]
    assert all(r["joined_at"] and r["left_at"] for r in rows)
    csv = httpx.get(f"{hub.url}/api/sessions/{sessions[0]['id']}/attendance.csv")
    assert csv.status_code == 200
    assert "墨江县指挥室" in csv.content.decode("utf-8-sig")


async def test_task_event_reaches_assigner_and_assignee_rooms(hub):
    dispatcher = HubClient(hub.ws_url, "puer-hall", "普洱市指挥中心")
    assignee = HubClient(hub.ws_url, "simao-hall", "思茅区指挥室")
    bystander = HubClient(hub.ws_url, "jinggu-hall", "景谷县指挥室")
    for client in (dispatcher, assignee, bystander):
        await client.join()
    try:
        pushed_to_dispatcher = dispatcher.wait_for(
            lambda m: m["type"] == "task-event", scaled(10)
        )
        pushed_to_assignee = assignee.wait_for(
            lambda m: m["type"] == "task-event", scaled(10)
        )
        deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
        reply = httpx.post(
            f"{hub.url}/api/tasks",
            json={
                "title": "核查思茅区南屏镇道路积水",
                "assigner": "zhang.wei",
                "assigner_room": "puer-hall",
                "assignee_unit": "puer.simao",
                "deadline": deadline.isoformat(),
                "priority": "high",
            },
            headers={"Idempotency-Key": "rec-test-1"},
        )
        assert reply.status_code == 201, reply.text
        for message in (await pushed_to_dispatcher, await pushed_to_assignee):
            assert message["task"]["title"] == "核查思茅区南屏镇道路积水"
            assert message["event"]["kind"] == "created"
        assert not [m for m in bystander.messages if m["type"] == "task-event"]
    finally:
        for client in (dispatcher, assignee, bystander):
            await client.close()


@pytest.mark.skipif(
    gstreamer_available() is not None, reason=str(gstreamer_available())
)
async def test_snapshot_is_stored_for_a_task(tmp_path):
    with GstRtspServer({"/cam": f"clip:{CLIP}"}) as rtsp:
        with run_hub(
            tmp_path, extra_config=_cameras_file(tmp_path, rtsp.url("/cam"))
        ) as hub:
            reply = httpx.post(
                f"{hub.url}/api/cameras/{CAMERA_ID}/snapshots", timeout=scaled(30)
            )
            assert reply.status_code == 201, reply.text
            body = reply.json()
            assert body["snapshot_path"].startswith(f"snapshots/{CAMERA_ID}/")
            image = httpx.get(f"{hub.url}{body['url']}")
            assert image.status_code == 200
            assert image.content[:2] == b"\xff\xd8"
            assert (body["width"], body["height"]) == (1280, 720)
            missing = httpx.get(f"{hub.url}/snapshots/{CAMERA_ID}/nothing.jpg")
            assert missing.status_code == 404


async def test_hearing_record_lists_admitted_parties_only(tmp_path):
    with run_hub(tmp_path, AUTH_CONFIG) as hub:
        room = "puer-mediation"
        mediator = await join_as(hub, "mediator", room, "调解员 李娜")
        admitted = await join_as(hub, "party", room, "当事人 王某", expect="joined")
        turned_away = await join_as(hub, "party", room, "当事人 赵某", expect="joined")
        try:
            reply = await request(mediator, {"type": "admit", "peer": admitted.peer_id})
            assert reply["type"] == "ok", reply
        finally:
            for client in (turned_away, admitted, mediator):
                await client.send({"type": "leave"})
                await client.close()

        def ended_session():
            url = f"{hub.url}/api/sessions?room={room}"
            sessions = httpx.get(url).json()["sessions"]
            return sessions if sessions and sessions[0]["ended_at"] else None

        sessions = await _eventually(ended_session, 10, "the hearing record to close")
        assert sessions[0]["kind"] == "mediation"
        url = f"{hub.url}/api/sessions/{sessions[0]['id']}/attendance"
        names = sorted(r["display_name"] for r in httpx.get(url).json()["attendance"])
        assert names == ["当事人 王某", "调解员 李娜"]


async def test_room_reopened_at_once_gets_new_record(hub):
    room = "reopen-1"
    first = HubClient(hub.ws_url, room, "宁洱县指挥室")
    await first.join()
    await first.send({"type": "leave"})
    second = HubClient(hub.ws_url, room, "景东县指挥室")
    await second.join()
    await second.send({"type": "leave"})
    await first.close()
    await second.close()

    def two_closed():
        sessions = httpx.get(f"{hub.url}/api/sessions?room={room}").json()["sessions"]
        if len(sessions) == 2 and all(s["ended_at"] for s in sessions):
            return sessions
        return None

    sessions = await _eventually(two_closed, 10, "two closed session records")
    names = []
    for session in sorted(sessions, key=lambda s: s["id"]):
        url = f"{hub.url}/api/sessions/{session['id']}/attendance"
        names.append([r["display_name"] for r in httpx.get(url).json()["attendance"]])
    assert names == [["宁洱县指挥室"], ["景东县指挥室"]]


async def test_second_hub_keeps_first_hubs_open_sessions(tmp_path):
    database = f'[database]\nurl = "sqlite:///{tmp_path / "shared.sqlite3"}"\n'
    with run_hub(tmp_path / "one", extra_config=database) as one:
        client = HubClient(one.ws_url, "shared-1", "普洱市指挥中心")
        await client.join()
        try:
            open_record = await _eventually(
                lambda: httpx.get(f"{one.url}/api/sessions?room=shared-1").json()[
                    "sessions"
                ],
                10,
                "the session record",
            )
            # A second hub on the same database starts (and stops) while the
            # first one still holds the session.
            with run_hub(tmp_path / "two", extra_config=database):
                pass
            sessions = httpx.get(f"{one.url}/api/sessions?room=shared-1").json()
            assert sessions["sessions"][0]["id"] == open_record[0]["id"]
            assert sessions["sessions"][0]["ended_at"] is None
        finally:
            await client.close()
