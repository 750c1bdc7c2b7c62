"""Dispatch task API over HTTP: create, list, status flow, reminders and
errors, checked on the responses a dispatcher's browser receives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dispatch.api import make_routes
from tests.conftest_db import CHINA, client_for, make_app, task_body


async def create(api, clock, **fields):
    response = await api.post("/api/tasks", json=task_body(clock, **fields))
    assert response.status_code == 201, response.text
    return response.json()


async def move(api, task_id, status, by="li.na", **extra):
    return await api.post(
        f"/api/tasks/{task_id}/status", json={"status": status, "by": by, **extra}
    )


async def test_create_returns_stored_task(api, clock, pushes):
    body = task_body(clock, camera_id="cam-simao-07", snapshot_path="snap/1.jpg")

    response = await api.post("/api/tasks", json=body)

    assert response.status_code == 201
    task = response.json()
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert task["title"] == "核查思茅区道路积水"
    assert task["status"] == "assigned"
    assert task["priority"] == "high"
    assert task["camera_id"] == "cam-simao-07"
    assert task["snapshot_path"] == "snap/1.jpg"
    assert task["overdue"] is False
    deadline = datetime.fromisoformat(task["deadline"])
    assert deadline == datetime.fromisoformat(body["deadline"])
    assert deadline.utcoffset() == timedelta(0)
    assert [event["kind"] for event in task["events"]] == ["created"]
    assert task["events"][0]["by"] == "zhang.wei"
    fetched = (await api.get(f"/api/tasks/{task['id']}")).json()
    assert fetched == task


async def test_create_pushes_to_assigner_and_unit_rooms(api, clock, pushes):
    task = await create(api, clock)

    [(message, rooms)] = await pushes.wait_for(1)

    assert message["type"] == "task-event"
    assert message["task"]["id"] == task["id"]
    assert message["event"]["kind"] == "created"
    assert rooms == ["puer-command", "puer.simao"]


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"title": "  "}, "title", "must not be empty"),
        ({"title": "x" * 201}, "title", "at most 200"),
        ({"assignee_unit": ""}, "assignee_unit", "must not be empty"),
        ({"assignee_unit": "puer simao"}, "assignee_unit", "dot-separated"),
        ({"assignee_unit": "puer..simao"}, "assignee_unit", "dot-separated"),
        ({"deadline": "2030-01-01T08:00:00"}, "deadline", "without a UTC offset"),
        ({"deadline": "tomorrow"}, "deadline", "not an ISO 8601 time"),
        ({"priority": "critical"}, "priority", "low, normal, high, urgent"),
        ({"session_id": "7"}, "session_id", "must be an integer"),
        ({"session_id": 999}, "session_id", "no such session"),
        ({"session_id": 2**70}, "session_id", "must be an integer"),
        ({"deadline": "9999-12-31T23:59:59-12:00"}, "deadline", "out of range"),
        ({"deadine": "2030-01-01T08:00:00+08:00"}, "deadine", "unknown field"),
    ],
)
async def test_create_rejects_invalid_field(api, clock, fields, field, words):
    response = await api.post("/api/tasks", json=task_body(clock, **fields))

    assert response.status_code == 400
    error = response.json()
    assert error["error"] == "invalid"
    assert repr(field) in error["message"]
    assert words in error["message"]
    listing = (await api.get("/api/tasks")).json()
    assert listing["total"] == 0


async def test_create_rejects_missing_field(api, clock):
    body = task_body(clock)
    del body["assignee_unit"]

    response = await api.post("/api/tasks", json=body)

    assert response.status_code == 400
    assert response.json()["message"] == "field 'assignee_unit' is required"


async def test_create_rejects_past_deadline(api, clock):
    past = (clock() - timedelta(minutes=1)).isoformat()

    response = await api.post("/api/tasks", json=task_body(clock, deadline=past))

    assert response.status_code == 400
    assert "has already passed" in response.json()["message"]


async def test_create_rejects_non_json_body(api):
    response = await api.post(
        "/api/tasks", content=b"title=x", headers={"content-type": "text/plain"}
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


async def test_idempotent_create_replays_task(api, clock, pushes):
    body = task_body(clock)
    headers = {"Idempotency-Key": "7d2f-0001"}

    first = await api.post("/api/tasks", json=body, headers=headers)
    clock.advance(hours=10)  # the deadline has passed by the replay
    second = await api.post("/api/tasks", json=body, headers=headers)

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["events"] == first.json()["events"]
    assert (await api.get("/api/tasks")).json()["total"] == 1
    assert pushes.kinds() == ["created"]


async def test_idempotency_key_with_other_body_conflicts(api, clock):
    headers = {"Idempotency-Key": "7d2f-0002"}
    first = await api.post("/api/tasks", json=task_body(clock), headers=headers)

    second = await api.post(
        "/api/tasks", json=task_body(clock, title="另一项任务"), headers=headers
    )

    assert second.status_code == 409
    error = second.json()
    assert error["error"] == "idempotency-conflict"
    assert f"task {first.json()['id']}" in error["message"]
    assert (await api.get("/api/tasks")).json()["total"] == 1


async def test_invalid_idempotency_key_rejected(api, clock):
    response = await api.post(
        "/api/tasks", json=task_body(clock), headers={"Idempotency-Key": "k" * 129}
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith("Idempotency-Key")


async def test_status_flow_to_verified(api, clock, pushes):
    task = await create(api, clock)
    steps = [
        ("accepted", "li.na"),
        ("in_progress", "li.na"),
        ("done", "li.na"),
        ("verified", "zhang.wei"),
    ]

    for status, by in steps:
        clock.advance(minutes=5)
        response = await move(api, task["id"], status, by=by, note=f"{status} ok")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == status

    history = (await api.get(f"/api/tasks/{task['id']}")).json()["events"]
    assert [(e["from"], e["to"]) for e in history] == [
        (None, "assigned"),
        ("assigned", "accepted"),
        ("accepted", "in_progress"),
        ("in_progress", "done"),
        ("done", "verified"),
    ]
    assert [e["by"] for e in history[1:]] == [by for _, by in steps]
    assert history[4]["note"] == "verified ok"
    times = [datetime.fromisoformat(e["at"]) for e in history]
    assert times == sorted(times)
    await pushes.wait_for(5)
    assert pushes.kinds() == ["created"] + ["status"] * 4


@pytest.mark.parametrize(
    ("path", "requested", "current", "hint"),
    [
        ([], "done", "assigned", "allowed next: accepted, cancelled"),
        (["accepted"], "accepted", "accepted", "it is already 'accepted'"),
        (["accepted"], "assigned", "accepted", "allowed next: in_progress"),
        (
            ["accepted", "in_progress", "done", "verified"],
            "in_progress",
            "verified",
            "'verified' is a final status",
        ),
    ],
)
async def test_invalid_transition_names_statuses(
    api, clock, path, requested, current, hint
):
    task = await create(api, clock)
    for status in path:
        by = "zhang.wei" if status == "verified" else "li.na"
        assert (await move(api, task["id"], status, by=by)).status_code == 200

    response = await move(api, task["id"], requested, by="zhang.wei")

    assert response.status_code == 409
    error = response.json()
    assert error["error"] == "invalid-transition"
    assert f"is '{current}'" in error["message"]
    assert f"cannot change to '{requested}'" in error["message"]
    assert hint in error["message"]
    assert (await api.get(f"/api/tasks/{task['id']}")).json()["status"] == current


async def test_assigner_returns_done_task(api, clock):
    task = await create(api, clock)
    for status in ("accepted", "in_progress", "done"):
        await move(api, task["id"], status)

    without_note = await move(api, task["id"], "in_progress", by="zhang.wei")
    returned = await move(
        api, task["id"], "in_progress", by="zhang.wei", note="照片不清晰，请重拍"
    )

    assert without_note.status_code == 400
    assert "'note'" in without_note.json()["message"]
    assert returned.status_code == 200
    last = returned.json()["events"][-1]
    assert (last["from"], last["to"]) == ("done", "in_progress")
    assert last["note"] == "照片不清晰，请重拍"


async def test_assigner_steps_need_assigner_or_room(api, clock):
    task = await create(api, clock)

    stranger = await move(api, task["id"], "cancelled", by="wang.fang")
    colleague = await move(
        api, task["id"], "cancelled", by="wang.fang", room="puer-command"
    )

    assert stranger.status_code == 403
    assert "'zhang.wei'" in stranger.json()["message"]
    assert colleague.status_code == 200
    assert colleague.json()["status"] == "cancelled"


async def test_status_of_unknown_task_is_404(api):
    response = await move(api, 4040, "accepted")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not-found",
        "message": "task 4040 not found; check the id",
    }


async def test_status_body_checked(api, clock):
    task = await create(api, clock)

    missing = await api.post(f"/api/tasks/{task['id']}/status", json={"by": "li"})
    unknown = await move(api, task["id"], "finished")

    assert missing.status_code == 400
    assert missing.json()["message"] == "field 'status' is required"
    assert unknown.status_code == 400
    assert "'finished'" in unknown.json()["message"]


async def test_reminder_recorded_and_pushed(api, clock, pushes):
    task = await create(api, clock)

    response = await api.post(
        f"/api/tasks/{task['id']}/reminders",
        json={"by": "chen.jun", "note": "请加快处置进度"},
    )

    assert response.status_code == 201
    event = response.json()
    assert event["kind"] == "reminder"
    assert event["note"] == "请加快处置进度"
    history = (await api.get(f"/api/tasks/{task['id']}")).json()["events"]
    assert history[-1] == event
    await pushes.wait_for(2)
    message, rooms = pushes.pushes[1]
    assert message["event"] == event
    assert rooms == ["puer-command", "puer.simao"]


async def test_reminder_on_closed_task_rejected(api, clock):
    task = await create(api, clock)
    await move(api, task["id"], "cancelled", by="zhang.wei")

    response = await api.post(
        f"/api/tasks/{task['id']}/reminders", json={"by": "chen.jun", "note": "催办"}
    )
    empty = await api.post(
        f"/api/tasks/{task['id']}/reminders", json={"by": "chen.jun", "note": ""}
    )

    assert response.status_code == 409
    assert "'cancelled'" in response.json()["message"]
    assert empty.status_code == 400
    assert "'note'" in empty.json()["message"]


async def test_list_filters(api, clock):
    simao = await create(api, clock, assignee_unit="puer.simao")
    ninger = await create(api, clock, assignee_unit="puer.ninger")
    city = await create(api, clock, assignee_unit="puer", assigner_room="yn-command")
    lookalike = await create(api, clock, assignee_unit="puer_x")
    await move(api, ninger["id"], "accepted")

    async def ids(**params):
        response = await api.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()["tasks"]]

    assert await ids() == [lookalike["id"], city["id"], ninger["id"], simao["id"]]
    assert await ids(unit="puer.simao") == [simao["id"]]
    assert await ids(unit="puer", subunits="true") == [
        city["id"],
        ninger["id"],
        simao["id"],
    ]
    assert await ids(status="accepted") == [ninger["id"]]
    assert await ids(status="accepted,assigned", unit="puer") == [city["id"]]
    assert await ids(room="yn-command") == [city["id"]]
    assert await ids(overdue="true") == []
    clock.advance(hours=5)
    assert await ids(overdue="true") == [
        lookalike["id"],
        city["id"],
        ninger["id"],
        simao["id"],
    ]
    overdue = (await api.get(f"/api/tasks/{simao['id']}")).json()
    assert overdue["overdue"] is True


async def test_list_pages_and_counts(api, clock):
    created = [await create(api, clock, title=f"任务{n}") for n in range(7)]

    first = (await api.get("/api/tasks", params={"limit": 3})).json()
    third = (await api.get("/api/tasks", params={"limit": 3, "offset": 6})).json()

    assert first["total"] == 7
    assert [t["id"] for t in first["tasks"]] == [t["id"] for t in created[:-4:-1]]
    assert [t["id"] for t in third["tasks"]] == [created[0]["id"]]
    assert "events" not in first["tasks"][0]


async def test_list_date_range(api, clock):
    clock.now = datetime(2025, 11, 30, 15, 30, tzinfo=UTC)  # 23:30 in Beijing
    november = await create(api, clock)
    clock.advance(hours=1)  # 00:30 on 1 December in Beijing
    december = await create(api, clock)

    async def ids(**params):
        response = await api.get("/api/tasks", params=params)
        assert response.status_code == 200, response.text
        return [task["id"] for task in response.json()["tasks"]]

    assert await ids(**{"from": "2025-11-01", "to": "2025-11-30"}) == [november["id"]]
    assert await ids(month="2025-12") == [december["id"]]
    assert await ids(month="2025-11", tz="UTC") == [december["id"], november["id"]]
    start = datetime(2025, 12, 1, 0, 0, tzinfo=CHINA).isoformat()
    assert await ids(**{"from": start}) == [december["id"]]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"limit": "0"}, "use 1 to 500"),
        ({"limit": "many"}, "expected an integer"),
        ({"offset": "-1"}, "use 0 or more"),
        ({"status": "open"}, "'open'"),
        ({"overdue": "maybe"}, "expected true or false"),
        ({"from": "2025-13-01"}, "expected a date"),
        ({"from": "2025-11-02", "to": "2025-11-01"}, "is not before"),
        ({"month": "2025-11", "from": "2025-11-01"}, "not both"),
        ({"tz": "Mars/Base"}, "unknown"),
        ({"unit": "a b"}, "'unit'"),
    ],
)
async def test_list_rejects_bad_query(api, params, words):
    response = await api.get("/api/tasks", params=params)

    assert response.status_code == 400
    assert words in response.json()["message"]


async def test_task_in_session_filter(api, store, clock):
    from dispatch import records

    session_id = await records.open_session(
        store, "puer-joint", "joint", "防汛会商", "普洱市指挥中心"
    )
    linked = await create(api, clock, session_id=session_id)
    await create(api, clock)

    response = await api.get("/api/tasks", params={"session": session_id})

    assert [t["id"] for t in response.json()["tasks"]] == [linked["id"]]
    assert linked["session_id"] == session_id


async def test_authorize_hook_decides(store, clock):
    asked = []

    async def authorize(request, action):
        asked.append(action)
        return action != "tasks.create"

    async with client_for(make_app(store, authorize=authorize, clock=clock)) as api:
        denied = await api.post("/api/tasks", json=task_body(clock))
        listed = await api.get("/api/tasks")

    assert denied.status_code == 403
    assert denied.json()["error"] == "forbidden"
    assert "'tasks.create'" in denied.json()["message"]
    assert listed.status_code == 200
    assert listed.json()["total"] == 0
    assert asked == ["tasks.create", "tasks.read"]


async def test_authorize_http_exception_passes_status(store):
    from starlette.exceptions import HTTPException

    def authorize(request, action):
        raise HTTPException(401, "missing bearer token")

    async with client_for(make_app(store, authorize=authorize)) as api:
        response = await api.get("/api/tasks")

    assert response.status_code == 401
    assert response.json() == {
        "error": "unauthorized",
        "message": "missing bearer token",
    }


async def test_unknown_path_and_method_are_json(api):
    missing = await api.get("/api/nothing")
    wrong = await api.delete("/api/tasks/1")

    assert missing.status_code == 404
    assert missing.json()["error"] == "not-found"
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method-not-allowed"


async def test_openapi_describes_every_route(api, store):
    response = await api.get("/api/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    described = {
        (path, method.upper())
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (route.path.replace(":int", ""), method)
        for route in make_routes(store)
        for method in (route.methods or ())
        if method != "HEAD" and "{path" not in route.path
    }
    assert served == described
    schemas = document["components"]["schemas"]
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, answer in operation["responses"].items():
                for content in answer.get("content", {}).values():
                    ref = content["schema"].get("$ref", "")
                    name = ref.rsplit("/", 1)[-1]
                    assert not ref or name in schemas, (status, ref)


HUGE = 10**24


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", f"/api/tasks/{HUGE}", 404),
        ("get", f"/api/sessions/{HUGE}", 404),
        ("post", f"/api/tasks/{HUGE}/status", 404),
        ("get", f"/api/tasks?session={HUGE}", 400),
        ("get", f"/api/tasks?offset={HUGE}", 400),
    ],
)
async def test_out_of_range_ids_named_not_crashed(api, method, path, status):
    if method == "post":
        response = await api.post(path, json={"status": "accepted", "by": "li.na"})
    else:
        response = await api.get(path)

    assert response.status_code == status, response.text
    assert response.json()["error"] in ("not-found", "invalid")
    assert str(HUGE) in response.json()["message"] or "-1" in response.json()["message"]
