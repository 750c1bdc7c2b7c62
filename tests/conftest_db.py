"""Database fixtures for the records and task tests (a pytest plugin).

Every test that takes `db_url` (or `store`, `api`) runs twice: against a
SQLite file in its tmp folder and against the PostgreSQL server at
HUB_TEST_PG_URL (default postgres@127.0.0.1:5432, database `test`) in a
schema of its own that is dropped afterwards. Deselect the PostgreSQL runs
with ``-m "not postgres"`` on a machine without the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.routing import Mount

from dispatch.api import make_routes
from dispatch.db import Store

PG_URL = os.environ.get(
    "HUB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

CHINA = timezone(timedelta(hours=8))

# Seconds any test waits for something that should happen at once, scaled
# by HUB_TEST_TIMEOUT_SCALE on a slow machine.
WAIT = 10.0 * float(os.environ.get("HUB_TEST_TIMEOUT_SCALE") or 1)


def pg_conninfo(url: str = PG_URL) -> str:
    """Return the libpq connection string for a SQLAlchemy PostgreSQL URL."""
    parsed = make_url(url)
    parts = [
        f"host={parsed.host or '127.0.0.1'}",
        f"port={parsed.port or 5432}",
        f"dbname={parsed.database}",
        f"user={parsed.username or 'postgres'}",
    ]
    if parsed.password:
        parts.append(f"password={parsed.password}")
    return " ".join(parts)


def pg_admin_connection() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(pg_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL at {make_url(PG_URL).render_as_string(hide_password=True)} "
            f"is not reachable ({error}); start it, set HUB_TEST_PG_URL, or "
            'deselect these runs with -m "not postgres"'
        )


@pytest.fixture
def pg_admin() -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test database, outside any store."""
    connection = pg_admin_connection()
    yield connection
    connection.close()


def _pg_schema_url(schema: str) -> str:
    url = make_url(PG_URL)
    query = dict(url.query)
    query["options"] = f"-csearch_path={schema}"
    return url.set(query=query).render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_schema_url() -> Iterator[str]:
    """Create a PostgreSQL schema for one test; yield a URL whose connections
    use it; drop it with everything in it afterwards."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = pg_admin_connection()
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_schema_url(schema)
    finally:
        admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """URL of an empty database: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/hub.sqlite3"
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL schema, for tests only PostgreSQL can run."""
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = Store.open(db_url)
    yield opened
    opened.close()


class Clock:
    """A clock the test moves by hand; starts at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class PushRecorder:
    """A `notify` callable that keeps every push and lets a test wait for
    a number of them."""

    def __init__(self) -> None:
        self.pushes: list[tuple[dict[str, Any], list[str]]] = []
        self._changed = asyncio.Condition()
        self.fail_next = 0

    async def __call__(self, message: dict[str, Any], rooms: list[str]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("signaling bus unavailable (test)")
        async with self._changed:
            self.pushes.append((message, list(rooms)))
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[tuple[dict[str, Any], list[str]]]:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.pushes) >= count), WAIT
            )
        return self.pushes

    def kinds(self) -> list[str]:
        return [message["event"]["kind"] for message, _ in self.pushes]


@pytest.fixture
def pushes() -> PushRecorder:
    return PushRecorder()


def make_app(store: Store, notify: Any = None, **options: Any) -> Starlette:
    """A Starlette app with the dispatch API mounted under /api, as the hub
    mounts it."""
    return Starlette(
        routes=[Mount("/api", routes=make_routes(store, notify, **options))]
    )


def client_for(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://hub.test")


@pytest.fixture
async def api(
    store: Store, pushes: PushRecorder, clock: Clock
) -> AsyncIterator[httpx.AsyncClient]:
    """HTTP client of the dispatch API on `store`, pushing to `pushes`, with
    time taken from `clock`."""
    async with client_for(make_app(store, pushes, clock=clock)) as client:
        yield client


def task_body(clock: Clock | None = None, **fields: Any) -> dict[str, Any]:
    """A valid create request; `fields` override its values."""
    now = clock() if clock else datetime.now(UTC)
    body: dict[str, Any] = {
        "title": "核查思茅区道路积水",
        "description": "请于截止时间前到场核查并回传照片。",
        "assigner": "zhang.wei",
        "assigner_room": "puer-command",
        "assignee_unit": "puer.simao",
        "deadline": (now + timedelta(hours=4)).astimezone(CHINA).isoformat(),
        "priority": "high",
    }
    body.update(fields)
    return body
