"""Database engine, schema upgrades and the `Store` that runs queries off the
event loop.

SQLite (a file) is the default and PostgreSQL (``postgresql+psycopg://``) is
for production. Service code is plain synchronous SQLAlchemy. `Store.run`
executes it in the store's own worker threads, so the asyncio loop never
blocks on the database. It also turns a lost or unreachable database into
`StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from hub import errors

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "hub" / "migrations"

# Key for pg_advisory_xact_lock so two hubs starting at once upgrade in turn.
_UPGRADE_LOCK_KEY = 0x7A6F6E677A6869

T = TypeVar("T")

# sqlite3 error messages that mean the file cannot be used right now.
_SQLITE_UNAVAILABLE = (
    "database is locked",
    "unable to open database file",
    "disk i/o error",
    "database or disk is full",
    "readonly database",
)


class DispatchError(errors.HubError):
    """Base of the errors raised by the records and task services, part of
    the hub's one exception tree.

    `code` is a stable identifier for programs. The message is for people:
    it names the wrong value and what to do.
    """

    code = "error"


class InvalidInput(DispatchError):
    """A request field is missing, of the wrong type or out of range."""

    code = "invalid"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DispatchError, errors.NotFound):
    code = "not-found"


class Forbidden(DispatchError, errors.Forbidden):
    code = "forbidden"


class Conflict(DispatchError, errors.Conflict):
    """The request cannot be applied to the current state of the data."""

    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid-transition"

    def __init__(self, message: str, current: str, requested: str) -> None:
        super().__init__(message)
        self.current = current
        self.requested = requested


class IdempotencyConflict(Conflict):
    code = "idempotency-conflict"


class StoreUnavailable(DispatchError):
    """The database could not be reached or dropped the connection.

    Nothing from the failed call was committed, unless the commit itself had
    already succeeded. A retry with the same idempotency key shows which."""

    code = "database-unavailable"


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def make_engine(
    url: str, *, sqlite_busy_timeout: float = 30.0, **kwargs: Any
) -> Engine:
    """Create an engine for `url` with the settings the services rely on.

    SQLite: the parent folder of the file is created, and WAL journaling and
    foreign keys are switched on. A connection whose execution options carry
    ``sqlite_write=True`` starts its transaction with BEGIN IMMEDIATE. So a
    write transaction takes the write lock up front instead of failing
    halfway when another writer got there first. `sqlite_busy_timeout` is
    how many seconds to wait for that lock.

    PostgreSQL: connections are checked before use (a backend killed while
    idle in the pool is replaced) and connecting times out after 5 seconds.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ValueError(
                f"database URL {url!r} is an in-memory SQLite database, which "
                "each worker thread would see empty; use a file, e.g. "
                "sqlite:///var/hub.sqlite3"
            )
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": sqlite_busy_timeout, "check_same_thread": False}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    if backend == "postgresql":
        connect_args = {"connect_timeout": 5}
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, connect_args=connect_args, **kwargs)
    raise ValueError(
        f"unsupported database URL {_redact(url)!r}; use sqlite:///PATH "
        "or postgresql+psycopg://USER@HOST/DB"
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Stop the sqlite3 module from opening transactions itself, so the
        # "begin" listener below decides between BEGIN and BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("sqlite_write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a factory of ORM sessions bound to `engine`. Objects stay
    readable after commit (expire_on_commit=False) so services can turn them
    into JSON once the transaction is over."""
    return sessionmaker(engine, expire_on_commit=False)


def upgrade(url: str) -> None:
    """Create the schema in the database at `url`, or upgrade it to the
    latest migration. Safe to call on every start."""
    engine = make_engine(url)
    try:
        upgrade_engine(engine)
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    logger.info("database schema at head: url=%s", _redact(str(engine.url)))


def is_unavailable(error: BaseException) -> bool:
    """Tell whether `error` means the database is unreachable, dropped the
    connection, or is locked past the busy timeout (as opposed to a bug or a
    constraint violation)."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, (exc.InterfaceError, exc.TimeoutError)):
        return True
    if not isinstance(error, exc.OperationalError):
        return False
    original = error.orig
    if type(original).__module__.startswith("sqlite3"):
        # sqlite3 also raises OperationalError for SQL mistakes such as
        # "no such table", which are bugs rather than an outage.
        message = str(original).lower()
        return any(marker in message for marker in _SQLITE_UNAVAILABLE)
    return True


class Store:
    """The database of one hub: an engine, a session factory and a small
    thread pool that runs blocking service code.

    Use `Store.open(url)` to create the schema (or upgrade it) and connect.
    """

    def __init__(self, engine: Engine, *, max_workers: int = 8) -> None:
        self.engine = engine
        self.url = _redact(str(engine.url))
        self.dialect = engine.dialect.name
        self.sessions = make_session_factory(engine)
        self._write_engine = engine.execution_options(sqlite_write=True)
        self._write_sessions = make_session_factory(self._write_engine)
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="dispatch-db"
        )
        # SQLite admits one writer at a time. Queueing this process's writers
        # on a lock wakes the next one as soon as the previous commits, where
        # SQLite's own busy handler would poll with sleeps of up to 100 ms.
        self._write_lock = threading.Lock() if self.dialect == "sqlite" else None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        upgrade: bool = True,
        max_workers: int = 8,
        **engine_kwargs: Any,
    ) -> Store:
        """Connect to `url`, upgrading the schema to head first unless
        `upgrade` is false. Raises `StoreUnavailable` when the database
        cannot be reached."""
        if make_url(url).get_backend_name() == "postgresql":
            engine_kwargs.setdefault("pool_size", max_workers)
        engine = make_engine(url, **engine_kwargs)
        try:
            if upgrade:
                upgrade_engine(engine)
        except exc.SQLAlchemyError as error:
            engine.dispose()
            if is_unavailable(error):
                raise StoreUnavailable(
                    f"cannot reach the database at {_redact(url)}: "
                    f"{_first_line(error)}; check that it runs and the URL is right"
                ) from error
            raise
        return cls(engine, max_workers=max_workers)

    def close(self) -> None:
        """Stop the worker threads (after running calls finish) and close
        every pooled connection."""
        self._executor.shutdown(wait=True)
        self.engine.dispose()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """Yield a session for queries; it is rolled back at the end."""
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """Yield a session in a write transaction that is committed when the
        block ends without an error and rolled back otherwise."""
        with contextlib.ExitStack() as stack:
            if self._write_lock is not None:
                stack.enter_context(self._write_lock)
            session = stack.enter_context(self._write_sessions())
            stack.enter_context(session.begin())
            yield session

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function(*args, **kwargs)` in a worker thread and return its
        result. Database connection failures become `StoreUnavailable`."""
        loop = asyncio.get_running_loop()
        call = functools.partial(self.call, function, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `function` in the calling thread with the same error mapping
        as `run`."""
        try:
            return function(*args, **kwargs)
        except exc.SQLAlchemyError as error:
            if not is_unavailable(error):
                raise
            name = getattr(function, "__name__", repr(function))
            logger.warning(
                "database unavailable during %s: url=%s error=%s",
                name,
                self.url,
                _first_line(error),
            )
            raise StoreUnavailable(
                "the database is unavailable or dropped the connection "
                f"({_first_line(error)}); nothing was changed unless the "
                "change had already been committed. Retry the request (with "
                "the same Idempotency-Key for a task create)."
            ) from error


def _first_line(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__
