"""Shared fixtures: a running hub started as a user would start it."""

from __future__ import annotations

import pytest

from tests.hubproc import run_hub

# Database fixtures (SQLite and the machine's PostgreSQL) for records tests.
pytest_plugins = ["tests.conftest_db"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A `hub serve` subprocess on loopback, shared by one test module."""
    with run_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


@pytest.fixture
def fresh_hub(tmp_path):
    with run_hub(tmp_path) as process:
        yield process
