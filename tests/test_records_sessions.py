"""Session records: what the signaling layer stores while a conference runs,
and what dispatchers read back over the API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from dispatch import records
from dispatch.db import Conflict, InvalidInput, NotFound, Store

START = datetime(2025, 11, 20, 1, 0, tzinfo=UTC)  # 09:00 in Beijing


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


async def hold_session(store: Store) -> int:
    """A joint session: two command rooms, one of which drops and rejoins."""
    session_id = await records.open_session(
        store, "puer-joint", "joint", "防汛联合会商", "普洱市指挥中心", started_at=START
    )
    await records.record_join(
        store, session_id, "p1", "普洱市指挥中心", "puer", "chair", joined_at=at(0)
    )
    await records.record_join(
        store, session_id, "p2", "思茅区指挥室", "puer.simao", "member", joined_at=at(1)
    )
    await records.add_chat(
        store,
        session_id,
        "普洱市指挥中心",
        "请各区汇报雨情",
        sender_peer="p1",
        sent_at=at(2),
    )
    await records.record_leave(store, session_id, "p2", left_at=at(11))
    await records.record_join(
        store,
        session_id,
        "p2",
        "思茅区指挥室",
        "puer.simao",
        "member",
        joined_at=at(12),
    )
    await records.add_chat(store, session_id, "思茅区指挥室", "收到", sent_at=at(13))
    await records.close_session(store, session_id, ended_at=at(30))
    return session_id


async def test_session_recorded_with_attendance(store):
    session_id = await hold_session(store)

    session = await records.get_session(store, session_id)
    rows = await records.list_attendance(store, session_id)

    assert session["kind"] == "joint"
    assert session["title"] == "防汛联合会商"
    assert session["host"] == "普洱市指挥中心"
    assert session["started_at"] == START.isoformat()
    assert session["ended_at"] == at(30).isoformat()
    assert session["participants"] == 2
    assert session["messages"] == 2
    assert [(r["participant_id"], r["joined_at"], r["left_at"]) for r in rows] == [
        ("p1", at(0).isoformat(), at(30).isoformat()),
        ("p2", at(1).isoformat(), at(11).isoformat()),
        ("p2", at(12).isoformat(), at(30).isoformat()),
    ]
    assert rows[1]["unit"] == "puer.simao"
    assert rows[1]["role"] == "member"


async def test_chat_listed_in_order(store):
    session_id = await hold_session(store)

    chat = await records.list_chat(store, session_id)

    assert chat["total"] == 2
    assert [m["text"] for m in chat["messages"]] == ["请各区汇报雨情", "收到"]
    assert chat["messages"][0]["sender_peer"] == "p1"
    assert chat["messages"][1]["sender_peer"] is None


async def test_close_twice_changes_nothing(store):
    session_id = await hold_session(store)

    again = await records.close_session(store, session_id, ended_at=at(90))

    assert again is False
    session = await records.get_session(store, session_id)
    assert session["ended_at"] == at(30).isoformat()


async def test_join_after_close_rejected(store):
    session_id = await hold_session(store)

    with pytest.raises(Conflict, match=f"session {session_id} ended at"):
        await records.record_join(store, session_id, "p9", "宁洱县指挥室")


async def test_leave_without_join_closes_nothing(store):
    session_id = await records.open_session(store, "r1", "lecture", "培训", "讲师")

    assert await records.record_leave(store, session_id, "p404") == 0


async def test_unknown_session_not_found(store):
    with pytest.raises(NotFound, match="session 777 not found"):
        await records.record_join(store, 777, "p1", "x")
    with pytest.raises(NotFound, match="session 777 not found"):
        await records.add_chat(store, 777, "x", "hello")


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda s: records.open_session(s, "bad room", "joint", "t", "h"), "'room'"),
        (lambda s: records.open_session(s, "r", "meeting", "t", "h"), "mediation"),
        (lambda s: records.open_session(s, "r", "joint", "", "h"), "'title'"),
        (lambda s: records.add_chat(s, 1, "x", "   "), "'text'"),
        (lambda s: records.record_join(s, "1", "p", "n"), "integer"),
    ],
)
async def test_invalid_record_input_rejected(store, call, words):
    with pytest.raises(InvalidInput, match=words):
        await call(store)


async def test_close_open_sessions_after_crash(store):
    left_open = await records.open_session(
        store, "puer-joint", "mediation", "邻里纠纷调解", "调解员", started_at=START
    )
    await records.record_join(store, left_open, "p1", "调解员", joined_at=at(1))
    finished = await hold_session(store)

    closed = await records.close_open_sessions(store, ended_at=at(60))

    assert closed == [left_open]
    session = await records.get_session(store, left_open)
    assert session["ended_at"] == at(60).isoformat()
    [row] = await records.list_attendance(store, left_open)
    assert row["left_at"] == at(60).isoformat()
    assert (await records.get_session(store, finished))["ended_at"] == at(
        30
    ).isoformat()


async def test_sessions_api(api, store):
    session_id = await hold_session(store)
    other = await records.open_session(store, "ninger", "lecture", "业务培训", "讲师")

    listing = (await api.get("/api/sessions")).json()
    by_room = (await api.get("/api/sessions", params={"room": "puer-joint"})).json()
    by_kind = (await api.get("/api/sessions", params={"kind": "lecture"})).json()
    one = (await api.get(f"/api/sessions/{session_id}")).json()
    attendance = (await api.get(f"/api/sessions/{session_id}/attendance")).json()
    chat = (await api.get(f"/api/sessions/{session_id}/chat")).json()
    missing = await api.get("/api/sessions/4040/attendance")
    bad_kind = await api.get("/api/sessions", params={"kind": "party"})

    assert [s["id"] for s in listing["sessions"]] == [other, session_id]
    assert listing["sessions"][1]["participants"] == 2
    assert [s["id"] for s in by_room["sessions"]] == [session_id]
    assert [s["id"] for s in by_kind["sessions"]] == [other]
    assert one["messages"] == 2
    assert attendance["session_id"] == session_id
    assert len(attendance["attendance"]) == 3
    assert [m["text"] for m in chat["messages"]] == ["请各区汇报雨情", "收到"]
    assert missing.status_code == 404
    assert missing.json()["error"] == "not-found"
    assert bad_kind.status_code == 400
    assert "'kind'" in bad_kind.json()["message"]


async def test_attendance_csv(api, store):
    session_id = await hold_session(store)

    response = await api.get(f"/api/sessions/{session_id}/attendance.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        f'filename="attendance-{session_id}.csv"'
        in response.headers["content-disposition"]
    )
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == [
        "参会方编号",
        "名称",
        "单位",
        "角色",
        "加入时间",
        "离开时间",
        "在线时长(分钟)",
    ]
    assert rows[1] == [
        "p1",
        "普洱市指挥中心",
        "puer",
        "chair",
        "2025-11-20 09:00",
        "2025-11-20 09:30",
        "30.0",
    ]
    assert rows[2][4:] == ["2025-11-20 09:01", "2025-11-20 09:11", "10.0"]
    assert rows[3][4:] == ["2025-11-20 09:12", "2025-11-20 09:30", "18.0"]
    assert len(rows) == 4


async def test_attendance_csv_in_other_zone(api, store):
    session_id = await hold_session(store)

    response = await api.get(
        f"/api/sessions/{session_id}/attendance.csv", params={"tz": "UTC"}
    )

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[1][4] == "2025-11-20 01:00"
