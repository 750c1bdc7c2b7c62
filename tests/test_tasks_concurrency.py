"""Task creation under concurrency, database failures and restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from sqlalchemy import event, func, select

from dispatch.db import Store, StoreUnavailable
from dispatch.models import Task, TaskEvent
from tests.conftest_db import WAIT, client_for, make_app, task_body


def count_rows(store: Store, key: str) -> tuple[int, int]:
    """Return (tasks with idempotency key `key`, events of those tasks)."""
    with store.reading() as session:
        tasks = session.scalar(
            select(func.count(Task.id)).where(Task.idempotency_key == key)
        )
        events = session.scalar(
            select(func.count(TaskEvent.id))
            .join(Task, Task.id == TaskEvent.task_id)
            .where(Task.idempotency_key == key)
        )
    return tasks, events


async def test_concurrent_same_key_creates_one(store, clock):
    # Hold both requests after their key lookup found nothing, so both go on
    # to insert and the unique constraint must decide.
    barrier = threading.Barrier(2, timeout=WAIT)
    lookups = []

    def hold(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "idempotency_key" in statement:
            lookups.append(statement)
            if len(lookups) <= 2:
                barrier.wait()

    event.listen(store.engine, "before_cursor_execute", hold)
    body = task_body(clock)
    headers = {"Idempotency-Key": "race-1"}
    async with client_for(make_app(store, clock=clock)) as api:
        first, second = await asyncio.gather(
            api.post("/api/tasks", json=body, headers=headers),
            api.post("/api/tasks", json=body, headers=headers),
        )
    event.remove(store.engine, "before_cursor_execute", hold)

    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"]
    assert count_rows(store, "race-1") == (1, 1)
    # Two lookups before inserting, one more after the losing insert.
    assert len(lookups) == 3


async def test_many_concurrent_creates_one_row(store, clock):
    body = task_body(clock)
    headers = {"Idempotency-Key": "burst-1"}
    async with client_for(make_app(store, clock=clock)) as api:
        responses = await asyncio.gather(
            *(api.post("/api/tasks", json=body, headers=headers) for _ in range(8))
        )

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 7 + [201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert count_rows(store, "burst-1") == (1, 1)


async def test_concurrent_creates_without_key(store, clock):
    async with client_for(make_app(store, clock=clock)) as api:
        responses = await asyncio.gather(
            *(api.post("/api/tasks", json=task_body(clock)) for _ in range(8))
        )
        listing = (await api.get("/api/tasks")).json()

    assert [response.status_code for response in responses] == [201] * 8
    assert listing["total"] == 8


async def test_restart_keeps_tasks_and_history(db_url, clock):
    first_store = Store.open(db_url)
    body = task_body(clock)
    headers = {"Idempotency-Key": "restart-1"}
    async with client_for(make_app(first_store, clock=clock)) as api:
        created = await api.post("/api/tasks", json=body, headers=headers)
        task_id = created.json()["id"]
        for status in ("accepted", "in_progress"):
            clock.advance(minutes=3)
            await api.post(
                f"/api/tasks/{task_id}/status", json={"status": status, "by": "li.na"}
            )
        await api.post(
            f"/api/tasks/{task_id}/reminders", json={"by": "chen.jun", "note": "加快"}
        )
        before = (await api.get(f"/api/tasks/{task_id}")).json()
    first_store.close()

    second_store = Store.open(db_url)
    try:
        async with client_for(make_app(second_store, clock=clock)) as api:
            after = (await api.get(f"/api/tasks/{task_id}")).json()
            listing = (
                await api.get("/api/tasks", params={"unit": "puer.simao"})
            ).json()
            replay = await api.post("/api/tasks", json=body, headers=headers)
    finally:
        second_store.close()

    assert after == before
    assert [e["kind"] for e in after["events"]] == [
        "created",
        "status",
        "status",
        "reminder",
    ]
    assert after["status"] == "in_progress"
    assert [task["id"] for task in listing["tasks"]] == [task_id]
    assert replay.status_code == 200
    assert replay.json()["id"] == task_id


def wait_backend_gone(pg_admin, pid: int) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        row = pg_admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
        if row[0] == 0:
            return
        time.sleep(0.01)
    raise TimeoutError(f"PostgreSQL backend {pid} still alive after {WAIT}s")


class BackendKiller:
    """Terminates the PostgreSQL backend of the connection that stores a task,
    at one point of the create: before the INSERT, before the COMMIT, or
    right after the COMMIT."""

    def __init__(self, store: Store, pg_admin, point: str) -> None:
        self.store = store
        self.pg_admin = pg_admin
        self.point = point
        self.pid: int | None = None
        self.fired = False

    def kill(self, pid: int) -> None:
        self.fired = True
        self.pg_admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_backend_gone(self.pg_admin, pid)

    def before_execute(self, conn, cursor, statement, parameters, context, many):
        if self.fired or not statement.startswith("INSERT INTO tasks"):
            return
        self.pid = conn.connection.dbapi_connection.info.backend_pid
        if self.point == "insert":
            self.kill(self.pid)

    def on_commit(self, conn) -> None:
        if self.point == "commit" and self.pid is not None and not self.fired:
            self.kill(self.pid)

    def after_commit(self, session) -> None:
        if self.point == "after-commit" and self.pid is not None and not self.fired:
            self.kill(self.pid)

    def __enter__(self) -> BackendKiller:
        event.listen(self.store.engine, "before_cursor_execute", self.before_execute)
        event.listen(self.store.engine, "commit", self.on_commit)
        event.listen(self.store._write_sessions, "after_commit", self.after_commit)
        return self

    def __exit__(self, *exc_info) -> None:
        event.remove(self.store.engine, "before_cursor_execute", self.before_execute)
        event.remove(self.store.engine, "commit", self.on_commit)
        event.remove(self.store._write_sessions, "after_commit", self.after_commit)


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("point", "first_status", "retry_status"),
    [("insert", 503, 201), ("commit", 503, 201), ("after-commit", 201, 200)],
)
async def test_backend_killed_mid_create(
    pg_url, pg_admin, clock, point, first_status, retry_status
):
    store = Store.open(pg_url)
    key = f"kill-{point}"
    body = task_body(clock)
    try:
        async with client_for(make_app(store, clock=clock)) as api:
            with BackendKiller(store, pg_admin, point) as killer:
                first = await api.post(
                    "/api/tasks", json=body, headers={"Idempotency-Key": key}
                )
            stored_after_first = count_rows(store, key)
            retry = await api.post(
                "/api/tasks", json=body, headers={"Idempotency-Key": key}
            )
            stored_after_retry = count_rows(store, key)
    finally:
        store.close()

    assert killer.fired
    assert first.status_code == first_status
    if first_status == 503:
        assert first.json()["error"] == "database-unavailable"
        assert "Idempotency-Key" in first.json()["message"]
        assert first.headers["retry-after"] == "5"
        assert stored_after_first == (0, 0)
    else:
        assert stored_after_first == (1, 1)
    assert retry.status_code == retry_status
    assert stored_after_retry == (1, 1)


@pytest.mark.postgres
async def test_unreachable_postgres_is_503(clock):
    # Port 1 on loopback: nothing listens there, so connecting is refused.
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    with pytest.raises(StoreUnavailable, match="cannot reach the database"):
        Store.open(url)

    store = Store.open(url, upgrade=False)
    try:
        async with client_for(make_app(store, clock=clock)) as api:
            created = await api.post("/api/tasks", json=task_body(clock))
            listed = await api.get("/api/tasks")
    finally:
        store.close()

    assert created.status_code == 503
    assert created.json()["error"] == "database-unavailable"
    assert "nothing was changed" in created.json()["message"]
    assert listed.status_code == 503


async def test_sqlite_locked_is_503_then_retry_stores_once(tmp_path, clock):
    path = tmp_path / "hub.sqlite3"
    url = f"sqlite:///{path}"
    store = Store.open(url, sqlite_busy_timeout=0.2)
    other = sqlite3.connect(path, isolation_level=None)
    body = task_body(clock)
    headers = {"Idempotency-Key": "locked-1"}
    try:
        async with client_for(make_app(store, clock=clock)) as api:
            other.execute("BEGIN EXCLUSIVE")
            locked = await api.post("/api/tasks", json=body, headers=headers)
            other.execute("ROLLBACK")
            retry = await api.post("/api/tasks", json=body, headers=headers)
        stored = count_rows(store, "locked-1")
    finally:
        other.close()
        store.close()

    assert locked.status_code == 503
    assert "database is locked" in locked.json()["message"]
    assert retry.status_code == 201
    assert stored == (1, 1)
