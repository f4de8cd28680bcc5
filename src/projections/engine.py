"""The projections' database engine: SQLite (a file or in memory) or PostgreSQL (a schema)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from ledger.errors import SyncLedgerError


class ProjectionError(SyncLedgerError, RuntimeError):
    """The projections cannot be opened or kept current; the message says why."""


def projection_engine(database_url: str) -> Engine:
    """A SQLAlchemy engine on the ledger's database (``sqlite:///…`` or
    ``postgresql+psycopg://…?schema=…``); ``memory://`` and in-memory SQLite get a private
    in-memory database."""
    if database_url.startswith("memory:"):
        return _memory_engine()
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            return _memory_engine()
        engine = create_engine(url, connect_args={"timeout": 30})
        _sqlite_transactions(engine)
        return engine
    if backend == "postgresql":
        schema = url.query.get("schema")
        url = url.difference_update_query(["schema"]).set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {"connect_timeout": 10}
        if isinstance(schema, str) and schema:
            connect_args["options"] = f"-c search_path={schema}"
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
    raise ProjectionError(f"unsupported database {backend!r} for the projections")


def _memory_engine() -> Engine:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions, and begin them IMMEDIATE, so a page's
    transaction holds the write lock from its first statement (no lock upgrade deadlocks)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        writing = conn.get_execution_options().get("syncledger_writing")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


def sqlite_pragma(conn: Connection, setting: str) -> None:
    """Set a SQLite connection setting outside any transaction."""
    conn.rollback()
    conn.connection.dbapi_connection.execute(f"PRAGMA {setting}")  # type: ignore[union-attr]
