"""Alembic environment for the hub's schema.

`dispatch.db.upgrade` runs migrations programmatically and passes an open
connection in ``config.attributes["connection"]``. To run the alembic
command line by hand instead, set ``sqlalchemy.url`` in an alembic.ini whose
``script_location`` points at this folder.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from dispatch.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no database to migrate: pass a connection in "
            "config.attributes['connection'] or set sqlalchemy.url"
        )
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported")
run_migrations_online()
