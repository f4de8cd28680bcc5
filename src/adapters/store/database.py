"""Choose the event store from one database URL.

``sqlite:///path/to/ledger.db`` (the embedded default) and ``postgresql+psycopg://user@host/db``
map onto eventsourcing's built-in SQLite and PostgreSQL recorders, which append 1.9x (SQLite) and
1.5x (PostgreSQL) as fast as eventsourcing-sqlalchemy's (``scripts/bench_store.py``, BENCHMARKS.md).
``memory://`` keeps everything in memory (tests, dry runs).

On both databases the recorder is the chained subclass from :mod:`adapters.store.chain`
(``APPLICATION_RECORDER_TOPIC``): every event carries a hash chained to the one before it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters.store.recorders import RECORDER_TOPICS
from ledger.errors import SyncLedgerError


class DatabaseUrlError(SyncLedgerError, ValueError):
    """The database URL cannot be used; the message says why and what would work."""


class LedgerNotFound(SyncLedgerError):
    """No ledger is stored where the URL points (and the command does not create one)."""


class StoreUnavailable(SyncLedgerError):
    """The ledger's database cannot be opened (unreachable, refused, locked); the message names
    where, without the password, and what the database said."""

    def __init__(self, database_url: str, cause: Exception) -> None:
        super().__init__(f"cannot open the ledger at {safe_url(database_url)}: {cause}")


def safe_url(database_url: str) -> str:
    """``database_url`` fit for a message: the password masked."""
    try:
        return make_url(database_url).render_as_string(hide_password=True)
    except ArgumentError:
        return database_url


def ledger_env(database_url: str, *, create_tables: bool = True) -> dict[str, str]:
    """The eventsourcing environment for the ledger stored at ``database_url``."""
    if database_url.startswith("memory:"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise DatabaseUrlError(
            f"not a database URL: {database_url!r}; use sqlite:///ledger.db or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    create = "y" if create_tables else "n"
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database or ""
        if path in ("", ":memory:"):
            path = f"file:syncledger-{uuid.uuid4().hex}?mode=memory&cache=shared"
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": RECORDER_TOPICS["eventsourcing.sqlite"],
            "CREATE_TABLE": create,
        }
    if backend == "postgresql":
        if not url.database:
            raise DatabaseUrlError(f"the PostgreSQL URL {database_url!r} names no database")
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": url.database,
            "POSTGRES_HOST": url.host or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": url.password or "",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_PRE_PING": "y",
            "APPLICATION_RECORDER_TOPIC": RECORDER_TOPICS["eventsourcing.postgres"],
            "CREATE_TABLE": create,
        }
        schema = url.query.get("schema")
        if isinstance(schema, str) and schema:
            env["POSTGRES_SCHEMA"] = schema
        return env
    raise DatabaseUrlError(
        f"unsupported database {backend!r} in {database_url!r}; "
        "use sqlite:///… or postgresql+psycopg://…"
    )
