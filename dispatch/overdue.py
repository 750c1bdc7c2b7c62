"""Overdue supervision: a background loop that warns once about each open
task whose deadline has passed.

The warning time is stored on the task (``overdue_warned_at``) in the same
transaction as an "overdue" event, before the push goes out, so a restarted
hub never warns about a task twice. A crash between that commit and the push
loses the push (the task still lists as overdue and shows the event). A push
that raises is retried on the next checks while this watcher runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from dispatch.db import Store, StoreUnavailable
from dispatch.models import EventKind, Task, TaskEvent
from dispatch.tasks import (
    OPEN_STATUSES,
    Notify,
    UnitRooms,
    _load_task,
    event_to_dict,
    push_event,
    task_to_dict,
    utcnow,
)

logger = logging.getLogger(__name__)

# Pushes kept for retry after `notify` raised; older ones are dropped first.
MAX_PENDING_PUSHES = 1000
MAX_BATCHES_PER_CHECK = 50


def find_overdue_sync(store: Store, now: datetime, limit: int) -> list[int]:
    """Return ids of open tasks past their deadline that have not been
    warned about, earliest deadline first."""
    with store.reading() as session:
        statement = (
            select(Task.id)
            .where(
                Task.status.in_(OPEN_STATUSES),
                Task.deadline < now,
                Task.overdue_warned_at.is_(None),
            )
            .order_by(Task.deadline, Task.id)
            .limit(limit)
        )
        return list(session.scalars(statement))


def claim_overdue_sync(
    store: Store, task_id: int, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Mark `task_id` as warned and add an "overdue" event, unless it was
    warned already, closed, or its deadline has not passed. The conditional
    UPDATE makes this safe when several hubs watch one database: exactly
    one of them gets the task. Returns (task, event) or None."""
    with store.writing() as session:
        result = session.execute(
            update(Task)
            .where(
                Task.id == task_id,
                Task.overdue_warned_at.is_(None),
                Task.status.in_(OPEN_STATUSES),
                Task.deadline < now,
            )
            .values(overdue_warned_at=now)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        task = _load_task(session, task_id)
        event = TaskEvent(
            task_id=task_id,
            kind=EventKind.OVERDUE.value,
            actor="system",
            at=now,
            from_status=task.status,
            to_status=task.status,
            note=f"deadline {task.deadline.isoformat()} has passed",
        )
        session.add(event)
        session.flush()
        task_data = task_to_dict(task, now)
        event_data = event_to_dict(event)
    return task_data, event_data


class OverdueWatcher:
    """Checks for overdue tasks every `interval` seconds and pushes one
    ``task-event`` message (event kind "overdue") per task to the assigner's
    room and the assignee unit's rooms through `notify`.

    `clock` returns the current aware time (tests pass a fixed one);
    `batch` is how many tasks one query fetches.
    """

    def __init__(
        self,
        store: Store,
        notify: Notify,
        interval: float = 30.0,
        *,
        unit_rooms: UnitRooms | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch: int = 200,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive seconds, got {interval!r}")
        if batch < 1:
            raise ValueError(f"batch must be 1 or more, got {batch!r}")
        self.store = store
        self.notify = notify
        self.interval = interval
        self.unit_rooms = unit_rooms
        self.clock = clock
        self.batch = batch
        self._pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop as an asyncio task; the first check runs at once."""
        if self._task is not None and not self._task.done():
            raise RuntimeError("the overdue watcher is already running")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="overdue-watcher")
        logger.info("overdue watcher started: interval=%ss", self.interval)

    async def stop(self) -> None:
        """Stop the loop after the check in progress, if any, finishes."""
        if self._task is None:
            return
        self._stopping.set()
        await self._task
        self._task = None
        if self._pending:
            logger.warning(
                "overdue watcher stopped with unsent pushes: task=%s",
                ",".join(str(task["id"]) for task, _ in self._pending),
            )
        logger.info("overdue watcher stopped")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.check_once()
            except StoreUnavailable as error:
                logger.warning("overdue check skipped: %s", error.message)
            except Exception:
                logger.exception("overdue check failed; retrying next interval")
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)
            except TimeoutError:
                pass

    async def check_once(self) -> list[int]:
        """Warn about every overdue task not warned yet; returns their ids.
        Pushes that failed earlier are retried first."""
        await self._retry_pending()
        now = self.clock()
        warned: list[int] = []
        # Bound one check so a backlog cannot hold the loop; the rest waits
        # for the next interval.
        for _ in range(MAX_BATCHES_PER_CHECK):
            ids = await self.store.run(find_overdue_sync, self.store, now, self.batch)
            for task_id in ids:
                claimed = await self.store.run(
                    claim_overdue_sync, self.store, task_id, now
                )
                if claimed is None:
                    # Closed, or warned by another hub, since the query above.
                    continue
                task, event = claimed
                warned.append(task_id)
                logger.info(
                    "task overdue: task=%s unit=%s deadline=%s",
                    task_id,
                    task["assignee_unit"],
                    task["deadline"],
                )
                await self._push(task, event)
            if len(ids) < self.batch:
                break
        return warned

    async def _push(self, task: dict[str, Any], event: dict[str, Any]) -> None:
        if await push_event(self.notify, task, event, self.unit_rooms):
            return
        self._pending.append((task, event))
        if len(self._pending) > MAX_PENDING_PUSHES:
            dropped, _ = self._pending.pop(0)
            logger.error(
                "overdue push dropped after repeated failures: task=%s", dropped["id"]
            )

    async def _retry_pending(self) -> None:
        pending, self._pending = self._pending, []
        for task, event in pending:
            logger.info("retrying overdue push: task=%s", task["id"])
            await self._push(task, event)
