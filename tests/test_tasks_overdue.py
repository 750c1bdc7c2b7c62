"""Overdue supervision: the watcher warns once per task, to the right rooms,
and a restarted hub does not warn again."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from dispatch import tasks
from dispatch.db import Store
from dispatch.overdue import OverdueWatcher
from tests.conftest_db import WAIT, PushRecorder, task_body


async def new_task(store, clock, hours=1, **fields):
    deadline = (clock() + timedelta(hours=hours)).isoformat()
    task, _ = await tasks.create_task(
        store, task_body(clock, deadline=deadline, **fields), now=clock()
    )
    return task


async def test_watcher_warns_once_to_rooms(store, clock, pushes):
    late = await new_task(store, clock, hours=1, assignee_unit="puer.ninger")
    later = await new_task(store, clock, hours=3)
    done = await new_task(store, clock, hours=1)
    for status in ("accepted", "in_progress", "done"):
        await tasks.change_status(store, done["id"], status, "li.na", now=clock())

    def unit_rooms(unit):
        return [f"unit-{unit}", "puer-command"]

    watcher = OverdueWatcher(store, pushes, 60, unit_rooms=unit_rooms, clock=clock)
    before = await watcher.check_once()
    clock.advance(hours=2)
    first = await watcher.check_once()
    second = await watcher.check_once()

    assert before == []
    assert first == [late["id"]]
    assert second == []
    [(message, rooms)] = pushes.pushes
    assert message["type"] == "task-event"
    assert message["event"]["kind"] == "overdue"
    assert message["event"]["by"] == "system"
    assert message["task"]["id"] == late["id"]
    assert message["task"]["overdue"] is True
    assert rooms == ["puer-command", "unit-puer.ninger"]
    stored = await tasks.get_task(store, late["id"], now=clock())
    assert stored["overdue_warned_at"] == clock().isoformat()
    assert [event["kind"] for event in stored["events"]] == ["created", "overdue"]
    untouched = await tasks.get_task(store, later["id"], now=clock())
    assert untouched["overdue_warned_at"] is None


async def test_restarted_watcher_does_not_warn_again(db_url, clock):
    first_store = Store.open(db_url)
    task = await new_task(first_store, clock, hours=1)
    clock.advance(hours=2)
    first_pushes = PushRecorder()
    await OverdueWatcher(first_store, first_pushes, 60, clock=clock).check_once()
    first_store.close()

    second_store = Store.open(db_url)
    second_pushes = PushRecorder()
    clock.advance(hours=1)
    try:
        warned = await OverdueWatcher(
            second_store, second_pushes, 60, clock=clock
        ).check_once()
        history = await tasks.get_task(second_store, task["id"], now=clock())
    finally:
        second_store.close()

    assert [message["task"]["id"] for message, _ in first_pushes.pushes] == [task["id"]]
    assert warned == []
    assert second_pushes.pushes == []
    assert [event["kind"] for event in history["events"]] == ["created", "overdue"]


async def test_two_watchers_share_one_warning(db_url, clock):
    stores = [Store.open(db_url), Store.open(db_url)]
    try:
        for _ in range(5):
            await new_task(stores[0], clock, hours=1)
        clock.advance(hours=2)
        recorders = [PushRecorder(), PushRecorder()]
        results = await asyncio.gather(
            *(
                OverdueWatcher(store, recorder, 60, clock=clock, batch=2).check_once()
                for store, recorder in zip(stores, recorders, strict=True)
            )
        )
    finally:
        for store in stores:
            store.close()

    warned = sorted(results[0] + results[1])
    assert len(warned) == 5
    assert len(set(warned)) == 5
    assert len(recorders[0].pushes) + len(recorders[1].pushes) == 5


async def test_failed_push_retried_next_check(store, clock, pushes, caplog):
    task = await new_task(store, clock, hours=1)
    clock.advance(hours=2)
    pushes.fail_next = 1
    watcher = OverdueWatcher(store, pushes, 60, clock=clock)

    with caplog.at_level(logging.ERROR, logger="dispatch.tasks"):
        first = await watcher.check_once()
    second = await watcher.check_once()

    assert first == [task["id"]]
    assert second == []
    assert f"push failed: task={task['id']}" in caplog.text
    [(message, _)] = pushes.pushes
    assert message["task"]["id"] == task["id"]
    assert message["event"]["kind"] == "overdue"


async def test_task_closed_before_check_not_warned(store, clock, pushes):
    task = await new_task(store, clock, hours=1)
    await tasks.change_status(store, task["id"], "cancelled", "zhang.wei", now=clock())
    clock.advance(hours=2)

    warned = await OverdueWatcher(store, pushes, 60, clock=clock).check_once()

    assert warned == []
    assert pushes.pushes == []


async def test_watcher_loop_starts_and_stops(store, clock, pushes, caplog):
    task = await new_task(store, clock, hours=1)
    clock.advance(hours=2)
    watcher = OverdueWatcher(store, pushes, 0.05, clock=clock)

    with caplog.at_level(logging.INFO, logger="dispatch.overdue"):
        watcher.start()
        with pytest.raises(RuntimeError, match="already running"):
            watcher.start()
        await pushes.wait_for(1)
        await watcher.stop()

    assert pushes.pushes[0][0]["task"]["id"] == task["id"]
    assert "overdue watcher started: interval=0.05s" in caplog.text
    assert f"task overdue: task={task['id']}" in caplog.text
    assert "overdue watcher stopped" in caplog.text
    # Later ticks found nothing more to warn about.
    assert len(pushes.pushes) == 1


async def test_watcher_survives_database_outage(clock, pushes, caplog):
    store = Store.open("postgresql+psycopg://postgres@127.0.0.1:1/test", upgrade=False)
    watcher = OverdueWatcher(store, pushes, 0.05, clock=clock)
    try:
        with caplog.at_level(logging.WARNING, logger="dispatch.overdue"):
            watcher.start()
            await asyncio.wait_for(_logged(caplog, "overdue check skipped"), WAIT)
            await watcher.stop()
    finally:
        store.close()

    assert "database is unavailable" in caplog.text


async def _logged(caplog, text):
    while text not in caplog.text:
        await asyncio.sleep(0.01)


def test_watcher_rejects_bad_interval(store, pushes):
    with pytest.raises(ValueError, match="interval must be positive"):
        OverdueWatcher(store, pushes, 0)
