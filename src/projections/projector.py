"""The projector: applies the ledger's notification log to the read-model tables, exactly once.

Each page of events is applied in one database transaction together with the tracking position
(table ``projection_tracking``). The transaction's first statement moves the position from the
value the page was read after to the page's last position, and only if it still holds that
value: a crash before the commit leaves neither rows nor position behind, and a second projector
(another thread, another process) that read the same page finds the position moved and drops
its copy. Rows are keyed by ledger position as well, so no page can land twice.

eventsourcing 9.5's ``TrackingRecorder`` can only commit tracking together with what is written
through its own connection, not with SQLAlchemy rows; hence our own tracking table, in the same
database and the same transaction as the rows.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from sqlalchemy import (
    Connection,
    Select,
    and_,
    delete,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger import events as ev
from ledger.config import INITIAL_CONFIG, ActiveConfig
from projections import bulk
from projections import models as m
from projections.decoding import fast_decode
from projections.engine import ProjectionError, projection_engine, sqlite_pragma
from projections.page import Page, RecordKey, Row, needs

#: Called with the number of events applied so far and the ledger's last position.
Progress = Callable[[int, int], None]

__all__ = ["EventLog", "LedgerLog", "ProjectionError", "Projector", "projection_engine"]

NAME = "syncledger"
#: Rows per ``IN (...)`` when loading the rows a page touches.
CHUNK = 500
#: Retries of a page that lost a race or hit a lock.
ATTEMPTS = 50
#: Events per transaction while rebuilding (bounded memory, few commits).
REBUILD_PAGE = 5000
#: The tables a page only ever adds rows to, by their name in ``Page.inserts``.
INSERTED = {
    "transactions": m.transactions,
    "configs": m.configs,
    "timeline": m.timeline,
    "writes": m.writes,
    "rejected": m.rejected,
    "api_usage": m.api_usage,
}


class LedgerLog(Application[UUID]):
    """The ledger's notification log and mapper alone, opened from the ledger's eventsourcing
    ``env`` without folding its state into memory as ``LedgerApp`` does: all a projector needs,
    at a fraction of the start-up time and memory on a large ledger."""

    name = "syncledger"


class EventLog(Protocol):
    """Where the projector reads the ledger: its notification log and event mapper
    (a :class:`ledger.application.LedgerApp` is one)."""

    @property
    def recorder(self) -> ApplicationRecorder: ...

    @property
    def mapper(self) -> Mapper[UUID]: ...


class _Lost(Exception):
    """Another projector applied this page first."""


class Projector:
    """Keeps the read models of one ledger current. Build with :meth:`open`."""

    def __init__(self, ledger: EventLog, engine: Engine, *, page_size: int = 1000) -> None:
        self.ledger = ledger
        self.engine = engine
        self.page_size = page_size
        self._writers = bulk.Writers()
        self._lock = threading.RLock()
        self._config: ActiveConfig = INITIAL_CONFIG
        self._config_at = -1  # the position self._config was loaded or advanced for
        self._prepare()

    @classmethod
    def open(cls, ledger: EventLog, database_url: str, *, page_size: int = 1000) -> Projector:
        """The projector for ``ledger``, with its tables in the ledger's database
        (``database_url`` as for the ledger; ``memory://`` keeps them in memory)."""
        return cls(ledger, projection_engine(database_url), page_size=page_size)

    # --- tables ----------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the tables; drop and recreate projections of another schema version; put back
        indexes a rebuild cut short left out."""
        m.tracking.create(self.engine, checkfirst=True)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(m.tracking.c.schema_version).where(m.tracking.c.name == NAME)
            ).first()
        if row is not None and row.schema_version == m.SCHEMA_VERSION:
            m.metadata.create_all(self.engine, checkfirst=True)
            with self._writing() as conn, conn.begin():
                bulk.create_indexes(conn)
            return
        m.metadata.drop_all(self.engine, tables=list(m.READ_MODELS), checkfirst=True)
        m.metadata.create_all(self.engine, checkfirst=True)
        with self._writing() as conn, conn.begin():
            conn.execute(delete(m.tracking).where(m.tracking.c.name == NAME))
            conn.execute(
                m.tracking.insert().values(name=NAME, position=0, schema_version=m.SCHEMA_VERSION)
            )

    def _writing(self) -> Any:
        return _Closing(self.engine.connect().execution_options(syncledger_writing=True))

    @property
    def position(self) -> int:
        """The ledger position the read models reflect."""
        with self.engine.connect() as conn:
            return self._position(conn)

    @staticmethod
    def _position(conn: Connection) -> int:
        value = conn.execute(
            select(m.tracking.c.position).where(m.tracking.c.name == NAME)
        ).scalar_one()
        return int(value)

    # --- catching up -------------------------------------------------------------------------

    def lag(self) -> int:
        """How many ledger positions the read models are behind."""
        last = self.ledger.recorder.max_notification_id() or 0
        return max(0, last - self.position)

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event recorded after :attr:`position`; return how many were applied.

        Safe to call from several threads or processes at once: each page is applied once."""
        with self._lock, self._writing() as conn:
            return self._catch_up(conn, self.page_size, progress)

    def _catch_up(self, conn: Connection, page_size: int, progress: Progress | None) -> int:
        applied = 0
        last = self.ledger.recorder.max_notification_id() or 0
        attempts = 0
        while True:
            start = self.position
            try:
                with _collector_paused():
                    done = self._apply_next(conn, start, page_size)
            except (_Lost, IntegrityError, DBAPIError) as exc:
                attempts += 1
                self._config_at = -1
                if attempts >= ATTEMPTS:
                    raise ProjectionError(f"cannot apply events after {start}: {exc}") from exc
                continue
            if done is None:
                return applied
            count, end = done
            applied += count
            if progress is not None:
                progress(applied, max(last, end))

    def _apply_next(self, conn: Connection, start: int, limit: int) -> tuple[int, int] | None:
        """Read and apply the page after ``start``; return its size and last position, or
        ``None`` when there is none. The page's objects are freed on return."""
        page = self._page_after(start, limit)
        if not page:
            return None
        self._apply(conn, start, page)
        return len(page), page[-1][0]

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empty the read models and apply the whole ledger again; return the event count.

        The secondary indexes are dropped while the tables refill and created again at the end
        (also when the rebuild fails; :meth:`open` recreates any still missing). Pages are
        applied as by :meth:`catch_up` (tracking moved in the same transaction), only larger,
        and on SQLite with ``synchronous=NORMAL``: a power cut may lose the last pages, never
        split one from its tracking position."""
        with self._lock, self._writing() as conn:
            with conn.begin():
                bulk.drop_indexes(conn)
                if conn.dialect.name == "postgresql":
                    names = ", ".join(t.name for t in m.READ_MODELS)
                    conn.execute(text(f"TRUNCATE {names}"))
                else:
                    for table in m.READ_MODELS:
                        conn.execute(delete(table))
                conn.execute(update(m.tracking).where(m.tracking.c.name == NAME).values(position=0))
            self._config_at = -1
            sqlite = conn.dialect.name == "sqlite"
            try:
                if sqlite:  # checkpoint the WAL every 64 MB, not every 4 MB
                    sqlite_pragma(conn, "synchronous = NORMAL")
                    sqlite_pragma(conn, "wal_autocheckpoint = 16384")
                return self._catch_up(conn, max(self.page_size, REBUILD_PAGE), progress)
            finally:
                if sqlite:
                    sqlite_pragma(conn, "synchronous = FULL")
                    sqlite_pragma(conn, "wal_autocheckpoint = 1000")
                conn.rollback()
                with conn.begin():
                    bulk.create_indexes(conn)

    def _page_after(self, start: int, limit: int) -> list[tuple[int, ev.LedgerEvent]]:
        notifications = self.ledger.recorder.select_notifications(
            start=start, limit=limit, inclusive_of_start=False
        )
        decode = self._decode
        return [(n.id, decode(n)) for n in notifications]

    def _decode(self, notification: Notification) -> ev.LedgerEvent:
        fast = fast_decode(notification) if self._plain else None
        if fast is not None:
            return fast
        event = self.ledger.mapper.to_domain_event(notification)
        assert isinstance(event, ev.LedgerEvent)
        return event

    @property
    def _plain(self) -> bool:
        mapper = self.ledger.mapper
        return mapper.cipher is None and mapper.compressor is None

    def events_after(self, start: int) -> Iterator[tuple[int, ev.LedgerEvent]]:
        """The ledger's events after ``start``, page by page (constant memory)."""
        while page := self._page_after(start, self.page_size):
            yield from page
            start = page[-1][0]

    def _load_config(self, conn: Connection, position: int) -> ActiveConfig:
        if self._config_at == position:
            return self._config
        row = conn.execute(
            select(m.configs.c.config)
            .where(m.configs.c.position <= position)
            .order_by(m.configs.c.version.desc())
            .limit(1)
        ).first()
        return INITIAL_CONFIG if row is None else ActiveConfig.from_dict(row.config)

    def _apply(self, conn: Connection, start: int, page: list[tuple[int, ev.LedgerEvent]]) -> None:
        end = page[-1][0]
        with conn.begin():
            moved = conn.execute(
                update(m.tracking)
                .where(m.tracking.c.name == NAME, m.tracking.c.position == start)
                .values(position=end)
            )
            if moved.rowcount != 1:
                raise _Lost
            record_keys, write_ids, keys = needs(page)
            rows = Page(
                self._load_config(conn, start),
                self._load_records(conn, record_keys),
                self._load_spans(conn, keys),
                self._load_statuses(conn, write_ids),
            )
            for position, domain_event in page:
                rows.apply(position, domain_event)
            self._write(conn, rows)
        self._config, self._config_at = rows.config, end

    # --- loading and writing the stateful rows ----------------------------------------------

    def _load_records(self, conn: Connection, keys: set[RecordKey]) -> dict[RecordKey, Row]:
        t = m.records
        return _load_in_chunks(
            conn,
            keys,
            lambda chunk: select(t).where(tuple_(t.c.system, t.c.record_id).in_(chunk)),
            lambda row: (row.system, row.record_id),
        )

    def _load_spans(self, conn: Connection, keys: set[str]) -> dict[str, Row]:
        t = m.mappings
        return _load_in_chunks(
            conn,
            keys,
            lambda chunk: select(t).where(
                and_(t.c.company_id.in_(chunk), t.c.unmapped_position.is_(None))
            ),
            lambda row: row.company_id,
        )

    def _load_statuses(self, conn: Connection, write_ids: set[str]) -> dict[str, Row]:
        t = m.write_status
        return _load_in_chunks(
            conn,
            write_ids,
            lambda chunk: select(t).where(t.c.write_id.in_(chunk)),
            lambda row: row.write_id,
        )

    def _write(self, conn: Connection, rows: Page) -> None:
        for name, table in INSERTED.items():
            self._writers(conn, table).insert(conn, rows.inserts[name])
        upserts = (
            (m.records, [rows.records[k] for k in sorted(rows.dirty_records)]),
            (m.mappings, [rows.dirty_spans[k] for k in sorted(rows.dirty_spans)]),
            (m.write_status, [rows.statuses[w] for w in sorted(rows.dirty_statuses)]),
        )
        for table, values in upserts:
            self._writers(conn, table).upsert(conn, values)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a page is read and applied: the page's
    thousands of short-lived, acyclic objects (freed by reference counting anyway) would
    otherwise trigger collections that scan the whole heap, the ledger's state included,
    again and again (a third of a rebuild's time without this)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Closing:
    """A connection as a context manager that closes it (and rolls back what is open)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def __enter__(self) -> Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


K = TypeVar("K")


def _load_in_chunks(
    conn: Connection,
    keys: set[K],
    query: Callable[[list[K]], Select[Any]],
    key_of: Callable[[Any], K],
) -> dict[K, Row]:
    """The rows ``query`` selects for ``keys``, :data:`CHUNK` keys a query, by ``key_of(row)``."""
    ordered = sorted(keys)  # type: ignore[type-var]
    found: dict[K, Row] = {}
    for i in range(0, len(ordered), CHUNK):
        for row in conn.execute(query(ordered[i : i + CHUNK])):
            found[key_of(row)] = dict(row._mapping)
    return found
