"""Shared fixtures: a controllable clock and database URLs for SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from adapters.store.database import ledger_env
from ledger.application import LedgerApp
from tests.support import FakeClock

PG_ENV = "SYNCLEDGER_TEST_POSTGRES_URL"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def postgres_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI"):
        raise RuntimeError(f"{PG_ENV} must be set in CI: the PostgreSQL tests may not be skipped")
    return url


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose schema is made for the caller and dropped after (skips the test
    when no PostgreSQL is configured, outside CI)."""
    base = postgres_url()
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    import psycopg

    plain = base.replace("postgresql+psycopg://", "postgresql://")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}schema={schema}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose schema is fresh for this test and dropped after it."""
    with postgres_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


#: Opens a ledger on the test's database (see :func:`open_ledger`).
Factory = Callable[[], LedgerApp]


@pytest.fixture
def open_ledger(database_url: str) -> Iterator[Factory]:
    """Open (and finally close) ledgers on the test's database."""
    opened: list[LedgerApp] = []

    def factory() -> LedgerApp:
        app = LedgerApp(env=ledger_env(database_url), clock=FakeClock())
        opened.append(app)
        return app

    yield factory
    for app in opened:
        app.close()
