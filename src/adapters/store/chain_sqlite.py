"""The SQLite recorder that writes the hash chain (:mod:`adapters.store.chain`) with the events."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from adapters.store.chain import (
    GENESIS,
    PAGE,
    ChainMissing,
    EventRow,
    LinkRow,
    chain_links,
)

# --- SQLite ------------------------------------------------------------------------------


class ChainedSQLiteRecorder(SQLiteApplicationRecorder):
    """The built-in SQLite application recorder, plus the hash chain (module docstring)."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.chain_table_name = f"{events_table_name}_chain"
        self._chain_ready = False

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as c:
            self._ensure_chain(c)
        self._chain_ready = True

    def vouch(self) -> None:
        """Create the chain over the events stored now (``syncledger audit init``)."""
        with self.datastore.transaction(commit=True) as c:
            self._ensure_chain(c, vouch=True)
        self._chain_ready = True

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super().insert_events(stored_events, **kwargs)
        self._chain_ready = True  # the transaction committed, the table exists
        return ids

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        self._ensure_chain(c)
        ids = super()._insert_events(c, stored_events, **kwargs)
        if not stored_events:
            return ids
        assert ids is not None and len(ids) == len(stored_events)
        # The inserts above hold SQLite's write lock until commit: nobody appends in between.
        c.execute(
            f"SELECT notification_id, hash FROM {self.chain_table_name} "
            "ORDER BY notification_id DESC LIMIT 1"
        )
        last = c.fetchone()
        prev_id, prev = (last[0], last[1]) if last else (0, GENESIS)
        rows = sorted(
            (i, s.originator_id, s.originator_version, s.topic, s.state)
            for i, s in zip(ids, stored_events, strict=True)
        )
        c.executemany(
            f"INSERT INTO {self.chain_table_name} VALUES (?,?,?)", chain_links(prev_id, prev, rows)
        )
        return ids

    def _ensure_chain(self, c: SQLiteCursor, *, vouch: bool = False) -> None:
        """Create the chain table for a ledger without events (or, with ``vouch``, over the
        events it holds); raise :class:`ChainMissing` for one with events."""
        if self._chain_ready:
            return
        c.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (self.chain_table_name,)
        )
        if c.fetchone() is not None:
            return
        c.execute(f"SELECT 1 FROM {self.events_table_name} LIMIT 1")
        if c.fetchone() is not None and not vouch:
            raise ChainMissing
        try:
            # Without IF NOT EXISTS: of two processes migrating at once, the second waits for
            # the write lock and then fails here, so only one back-fills.
            c.execute(
                f"CREATE TABLE {self.chain_table_name} (notification_id INTEGER PRIMARY KEY, "
                "prev_id INTEGER NOT NULL, hash BLOB NOT NULL)"
            )
        except sqlite3.OperationalError as exc:
            if "already exists" not in str(exc):
                raise
            return
        prev_id, prev = 0, GENESIS
        while rows := self._event_rows(c, prev_id, None, PAGE):
            links = chain_links(prev_id, prev, rows)
            c.executemany(f"INSERT INTO {self.chain_table_name} VALUES (?,?,?)", links)
            prev_id, prev = links[-1][0], links[-1][2]

    def _event_rows(
        self, c: SQLiteCursor, after: int, stop: int | None, limit: int
    ) -> list[EventRow]:
        bound = "" if stop is None else f"AND rowid <= {int(stop)} "
        c.execute(
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.events_table_name} WHERE rowid > ? {bound}ORDER BY rowid LIMIT ?",
            (after, limit),
        )
        # SQLite keeps whatever type a hand edit wrote; any such edit must hash differently.
        return [(r[0], self._originator(r[1]), r[2], str(r[3]), _blob(r[4])) for r in c.fetchall()]

    def _originator(self, value: object) -> UUID | str:
        try:
            return self.convert_originator_id(str(value))
        except ValueError:  # edited by hand into something that is not a UUID
            return str(value)

    # ChainedRecorder

    def chain_exists(self) -> bool:
        return self._table_exists(self.chain_table_name)

    def events_exist(self) -> bool:
        return self._table_exists(self.events_table_name)

    def _table_exists(self, name: str) -> bool:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
            return c.fetchone() is not None

    def chain_stop(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT max(coalesce((SELECT max(rowid) FROM {self.events_table_name}), 0), "
                f"coalesce((SELECT max(notification_id) FROM {self.chain_table_name}), 0))"
            )
            return int(c.fetchone()[0])

    def event_rows(self, after: int, stop: int, limit: int) -> Sequence[EventRow]:
        with self.datastore.transaction(commit=False) as c:
            return self._event_rows(c, after, stop, limit)

    def link_rows(self, after: int, stop: int, limit: int) -> Sequence[LinkRow]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT notification_id, prev_id, hash FROM {self.chain_table_name} "
                "WHERE notification_id > ? AND notification_id <= ? "
                "ORDER BY notification_id LIMIT ?",
                (after, stop, limit),
            )
            return [(r[0], r[1], bytes(r[2])) for r in c.fetchall()]


def _blob(value: object) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()
