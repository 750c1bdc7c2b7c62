"""Schema creation and upgrades, and the database URL handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from dispatch.db import Store, StoreUnavailable, make_engine, upgrade
from dispatch.models import Base

ROOT = Path(__file__).resolve().parent.parent


def schema_differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_creates_schema_matching_models(db_url):
    upgrade(db_url)

    assert schema_differences(db_url) == []
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert tables == {
        "alembic_version",
        "session_records",
        "attendance",
        "chat_messages",
        "tasks",
        "task_events",
    }


async def test_upgrade_twice_keeps_data(db_url):
    from dispatch import records

    store = Store.open(db_url)
    session_id = await records.open_session(store, "r1", "joint", "会商", "主持人")
    store.close()

    upgrade(db_url)

    store = Store.open(db_url)
    try:
        assert (await records.get_session(store, session_id))["title"] == "会商"
    finally:
        store.close()


def test_sqlite_parent_folders_created(tmp_path):
    path = tmp_path / "var" / "data" / "hub.sqlite3"

    upgrade(f"sqlite:///{path}")

    assert path.is_file()


def test_cli_db_upgrade(tmp_path):
    path = tmp_path / "cli" / "hub.sqlite3"
    env = dict(os.environ, HUB_DATABASE_URL=f"sqlite:///{path}")

    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "database schema is up to date" in result.stdout
    assert schema_differences(f"sqlite:///{path}") == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://u@127.0.0.1/hub", "unsupported database URL"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
    ],
)
def test_unusable_url_rejected(url, words):
    with pytest.raises(ValueError, match=words):
        make_engine(url)


def test_password_not_in_unavailable_message():
    url = "postgresql+psycopg://hub:s3cret-pw@127.0.0.1:1/hub"

    with pytest.raises(StoreUnavailable) as caught:
        Store.open(url)

    assert "s3cret-pw" not in caught.value.message
    assert "127.0.0.1:1" in caught.value.message
