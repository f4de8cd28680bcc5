"""The PostgreSQL recorder that writes the hash chain (:mod:`adapters.store.chain`) with the
events."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from adapters.store.chain import (
    GENESIS,
    PAGE,
    ChainMissing,
    EventRow,
    LinkRow,
    chain_links,
)

# --- PostgreSQL --------------------------------------------------------------------------


class ChainedPostgresRecorder(PostgresApplicationRecorder):
    """The built-in PostgreSQL application recorder, plus the hash chain (module docstring)."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ValueError(
                "the hash chain is written by the recorder: unset POSTGRES_ENABLE_DB_FUNCTIONS"
            )
        self.chain_table_name = f"{events_table_name}_chain"
        self.check_identifier_length(self.chain_table_name)
        schema, events = Identifier(datastore.schema), Identifier(events_table_name)
        chain = Identifier(self.chain_table_name)
        self._chain_ready = False
        self._last_link = threading.local()  # the cursor reading the last link, per writer
        # The library returns only notification ids; returning the keys too pairs each id
        # with its event without trusting the order of RETURNING.
        self.insert_events_statement = SQL(
            "INSERT INTO {schema}.{table} AS t (originator_id, originator_version, topic, state) "
            "SELECT originator_id, originator_version, topic, state "
            "FROM unnest(%s::{schema}.{stored_event_type}[]) "
            "RETURNING notification_id, originator_id, originator_version"
        ).format(
            schema=schema,
            table=events,
            stored_event_type=Identifier(self.stored_event_type_name),
        )
        self._sql_create_chain = SQL(
            "CREATE TABLE IF NOT EXISTS {schema}.{chain} (notification_id bigint PRIMARY KEY, "
            "prev_id bigint NOT NULL, hash bytea NOT NULL)"
        ).format(schema=schema, chain=chain)
        self._sql_chain_exists = SQL("SELECT to_regclass(%s) IS NOT NULL AS present")
        self._sql_any_event = SQL("SELECT 1 FROM {schema}.{events} LIMIT 1").format(
            schema=schema, events=events
        )
        self._chain_regclass = f'"{datastore.schema}"."{self.chain_table_name}"'
        self._sql_last_link = SQL(
            "SELECT notification_id, hash FROM {schema}.{chain} "
            "ORDER BY notification_id DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        # Hashes go as one concatenated bytea and positions as text: psycopg's per-element
        # array dumping made ``unnest(%s::bytea[])`` cost ~3x more per transaction.
        self._sql_insert_links = SQL(
            "INSERT INTO {schema}.{chain} (notification_id, prev_id, hash) "
            "SELECT n, p, substring(%b::bytea from (i::int - 1) * 32 + 1 for 32) "
            "FROM unnest(string_to_array(%s, ',')::bigint[], string_to_array(%s, ',')::bigint[]) "
            "WITH ORDINALITY AS t(n, p, i)"
        ).format(schema=schema, chain=chain)
        self._sql_event_rows = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, events=events)
        self._sql_link_rows = SQL(
            "SELECT notification_id, prev_id, hash FROM {schema}.{chain} "
            "WHERE notification_id > %s AND notification_id <= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=schema, chain=chain)
        self._sql_stop = SQL(
            "SELECT greatest((SELECT max(notification_id) FROM {schema}.{events}), "
            "(SELECT max(notification_id) FROM {schema}.{chain}), 0) AS stop"
        ).format(schema=schema, events=events, chain=chain)

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            self._ensure_chain(curs)
        self._chain_ready = True

    def vouch(self) -> None:
        """Create the chain over the events stored now (``syncledger audit init``)."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            self._ensure_chain(curs, vouch=True)
        self._chain_ready = True

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        self._chain_ready = True  # the transaction committed, the table exists
        return ids

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        if not self._chain_ready:  # an older ledger opened without CREATE_TABLE
            self._lock_table(curs)
            self._ensure_chain(curs)
        super()._insert_stored_events(curs, stored_events, **kwargs)

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        # The library calls this between taking the EXCLUSIVE lock and inserting: read the
        # last link here, on a cursor of its own, so it travels in the same pipeline sync as
        # the insert instead of costing a round trip of its own.
        super()._notify_channel(curs)
        self._last_link.cursor = curs.connection.cursor()
        self._last_link.cursor.execute(self._sql_last_link)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        assert curs.statusmessage and curs.statusmessage.startswith("INSERT"), curs.statusmessage
        by_key = {
            (str(r["originator_id"]), r["originator_version"]): r["notification_id"]
            for r in curs.fetchall()
        }
        ids = [by_key[(str(s.originator_id), s.originator_version)] for s in stored_events]
        with self._last_link.cursor as links:  # queued by _notify_channel, under the lock
            last = links.fetchone()
        prev_id, prev = (last["notification_id"], bytes(last["hash"])) if last else (0, GENESIS)
        rows = sorted(
            (i, s.originator_id, s.originator_version, s.topic, s.state)
            for i, s in zip(ids, stored_events, strict=True)
        )
        self._insert_links(curs, chain_links(prev_id, prev, rows))
        return ids

    def _insert_links(self, curs: Cursor[DictRow], links: Sequence[LinkRow]) -> None:
        curs.execute(
            self._sql_insert_links,
            (
                b"".join(h for _, _, h in links),
                ",".join(str(p) for p, _, _ in links),
                ",".join(str(q) for _, q, _ in links),
            ),
        )

    def _ensure_chain(self, curs: Cursor[DictRow], *, vouch: bool = False) -> None:
        """Create the chain table for a ledger without events (or, with ``vouch``, over the
        events it holds); raise :class:`ChainMissing` for one with events. The caller holds
        the table lock."""
        curs.execute(self._sql_chain_exists, (self._chain_regclass,))
        row = curs.fetchone()
        if row is not None and row["present"]:
            return
        curs.execute(self._sql_any_event)
        if curs.fetchone() is not None and not vouch:
            raise ChainMissing
        curs.execute(self._sql_create_chain)
        prev_id, prev = 0, GENESIS
        while rows := self._event_rows(curs, prev_id, 2**62, PAGE):
            links = chain_links(prev_id, prev, rows)
            self._insert_links(curs, links)
            prev_id, prev = links[-1][0], links[-1][2]

    def _event_rows(
        self, curs: Cursor[DictRow], after: int, stop: int, limit: int
    ) -> list[EventRow]:
        curs.execute(self._sql_event_rows, (after, stop, limit))
        return [
            (
                r["notification_id"],
                r["originator_id"],
                r["originator_version"],
                r["topic"],
                bytes(r["state"]),
            )
            for r in curs.fetchall()
        ]

    # ChainedRecorder

    def chain_exists(self) -> bool:
        return self._table_exists(self.chain_table_name)

    def events_exist(self) -> bool:
        return self._table_exists(self.events_table_name)

    def _table_exists(self, name: str) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._sql_chain_exists, (f'"{self.datastore.schema}"."{name}"',))
            row = curs.fetchone()
            return bool(row and row["present"])

    def chain_stop(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._sql_stop)
            row = curs.fetchone()
            return int(row["stop"]) if row else 0

    def event_rows(self, after: int, stop: int, limit: int) -> Sequence[EventRow]:
        with self.datastore.transaction(commit=False) as curs:
            return self._event_rows(curs, after, stop, limit)

    def link_rows(self, after: int, stop: int, limit: int) -> Sequence[LinkRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._sql_link_rows, (after, stop, limit))
            return [(r["notification_id"], r["prev_id"], bytes(r["hash"])) for r in curs.fetchall()]
