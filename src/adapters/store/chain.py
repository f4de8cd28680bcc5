"""Tamper evidence: every stored event carries a SHA-256 hash chained to the one before it.

The chain runs over the notification log in order. Link ``p`` (the event at position ``p``) is::

    hash(p) = sha256(hash(prev) | len+p | len+originator_id | len+version | len+topic | len+state)

where ``prev`` is the position before it in the log (``0`` and 32 zero bytes for the first
event) and every field is length-prefixed, so no two different events hash alike. Positions are
ordered but not gap-free: PostgreSQL spends sequence numbers on inserts that lose an optimistic
concurrency race, so each link also stores ``prev_id``, the position it is chained to.

The links live in a side table keyed by position (``<events table>_chain``) and are written by
the recorders below **inside the transaction that inserts the events, after the events are
inserted**: on PostgreSQL under the library's ``LOCK TABLE … IN EXCLUSIVE MODE`` that already
serialises writers, on SQLite under its database write lock. A crash therefore never leaves an
event without its link, and two writers cannot fork the chain.

The chain table is created with the ledger, while it has no events. It is never created over
events that are already there, except by an explicit ``syncledger audit init`` (:func:`init_chain`)
that says what it vouches for: otherwise dropping the table would make the next open vouch for
whatever the events hold by then. A ledger with events and no chain table refuses appends
(:class:`ChainMissing`) and ``verify`` reports it as tampering. A chain table that exists is
never filled in again, so removing links shows up as "hash missing".

A chain anyone can recompute proves nothing against someone who rewrites the whole database;
record the head that ``syncledger audit verify`` prints somewhere else and pass it back with
``--head``: verification then also proves that nothing before it was rewritten.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import Environment
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from ledger.errors import SyncLedgerError

GENESIS = bytes(32)
PAGE = 1000

EventRow = tuple[int, UUID | str, int, str, bytes]  # position, originator, version, topic, state
LinkRow = tuple[int, int, bytes]  # position, prev_id, hash


def link_hash(
    prev: bytes, position: int, originator_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    """The hash of the link at ``position``, chained to ``prev``."""
    parts = (
        str(position).encode(),
        str(originator_id).encode(),
        str(version).encode(),
        topic.encode(),
        bytes(state),
    )
    framed = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
    return hashlib.sha256(prev + framed).digest()


def chain_links(prev_id: int, prev: bytes, rows: Sequence[EventRow]) -> list[LinkRow]:
    """Links for ``rows`` (in position order) following the link ``(prev_id, prev)``."""
    links: list[LinkRow] = []
    for row in rows:
        prev = link_hash(prev, *row)
        links.append((row[0], prev_id, prev))
        prev_id = row[0]
    return links


class ChainedRecorder(Protocol):
    """What verification reads from a chained store."""

    def chain_exists(self) -> bool: ...

    def vouch(self) -> None: ...

    def events_exist(self) -> bool: ...

    def chain_stop(self) -> int:
        """The highest position in the events or the chain table, read in one snapshot."""
        ...

    def event_rows(self, after: int, stop: int, limit: int) -> Sequence[EventRow]: ...

    def link_rows(self, after: int, stop: int, limit: int) -> Sequence[LinkRow]: ...


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


RECORDER_TOPICS = {
    "eventsourcing.sqlite": f"{__name__}:{ChainedSQLiteRecorder.__qualname__}",
    "eventsourcing.postgres": f"{__name__}:{ChainedPostgresRecorder.__qualname__}",
}


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold: ``problem`` is one of ``state changed``,
    ``hash changed``, ``row missing``, ``hash missing``; ``detail`` says more."""

    position: int
    problem: str
    detail: str


@dataclass(frozen=True)
class ChainReport:
    verified: int  # links that held
    head: bytes  # the hash of the last link that held
    head_position: int
    broken: ChainBreak | None
    head_found: bool | None = None  # whether the expected head occurs (None: none expected)


class NoChainError(SyncLedgerError):
    """There is no stored ledger to verify (kept in memory, or never created)."""


class ChainMissing(SyncLedgerError):
    """The ledger holds events but no hash chain: its history cannot be vouched for, so nothing
    is appended to it until someone who knows why runs ``syncledger audit init``."""

    def __init__(self) -> None:
        super().__init__(
            "this ledger holds events but has no hash chain (its chain table is missing: "
            "dropped, or the ledger predates the chain); nothing is appended to a ledger whose "
            "history cannot be vouched for. Check it with 'syncledger audit verify'; if you know "
            "why the chain is missing, 'syncledger audit init' chains the events as they are now"
        )


def open_chained_recorder(
    env: dict[str, str], app_name: str
) -> tuple[InfrastructureFactory[Any], ChainedRecorder]:
    """The chained recorder of the application ``app_name`` stored as ``env`` says."""
    factory = InfrastructureFactory[Any].construct(Environment(app_name, env))
    recorder = factory.application_recorder()
    if not isinstance(recorder, ChainedSQLiteRecorder | ChainedPostgresRecorder):
        factory.close()
        raise NoChainError("this ledger is kept in memory: there is no stored chain to verify")
    return factory, recorder


def _merged(
    recorder: ChainedRecorder, stop: int
) -> Iterator[tuple[int, EventRow | None, LinkRow | None]]:
    """Events and links side by side in position order, a page at a time."""

    def pages(read: Callable[[int, int, int], Sequence[Any]]) -> Iterator[Any]:
        after = 0
        while page := read(after, stop, PAGE):
            yield from page
            after = page[-1][0]

    events, links = pages(recorder.event_rows), pages(recorder.link_rows)
    event, link = next(events, None), next(links, None)
    while event is not None or link is not None:
        position = min(r[0] for r in (event, link) if r is not None)
        e = event if event is not None and event[0] == position else None
        k = link if link is not None and link[0] == position else None
        yield position, e, k
        if e is not None:
            event = next(events, None)
        if k is not None:
            link = next(links, None)


def init_chain(recorder: ChainedRecorder) -> ChainReport | None:
    """Chain the events stored now, for a ledger that has none (``syncledger audit init``);
    ``None`` if it is chained already (nothing is done). The report says what the new chain
    vouches for: every event up to its head, as the events are at this moment."""
    if not recorder.events_exist():
        raise NoChainError("there is no ledger here (no events table)")
    if recorder.chain_exists():
        return None
    recorder.vouch()
    return verify_chain(recorder)


def verify_chain(
    recorder: ChainedRecorder,
    *,
    expected_head: bytes | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Walk the chain from position 1 in constant memory; report the first break.

    ``on_start(stop)`` is told the last position, ``on_progress(position)`` each position.
    Raises :class:`NoChainError` when there is no ledger at all."""
    if not recorder.events_exist():
        raise NoChainError("there is no ledger here (no events table)")
    if not recorder.chain_exists():
        detail = (
            "the ledger holds events but its chain table is missing: dropped, or the ledger "
            "predates the chain; nothing vouches for any event"
        )
        return ChainReport(0, GENESIS, 0, ChainBreak(1, "chain missing", detail))
    stop = recorder.chain_stop()
    if on_start is not None:
        on_start(stop)
    prev_id, prev, verified = 0, GENESIS, 0
    found = None if expected_head is None else False
    suspect: tuple[int, bytes] | None = None  # a link whose hash did not match, and its hash

    def report(broken: ChainBreak | None) -> ChainReport:
        return ChainReport(verified, prev, prev_id, broken, found)

    for position, event, link in _merged(recorder, stop):
        if on_progress is not None:
            on_progress(position)
        if suspect is not None:
            # Does the next link still chain to the suspect's stored hash? Then that hash is
            # original and the event changed; otherwise the hash itself was rewritten.
            if event is None or link is None:
                return report(_changed(suspect[0], event_changed=None))
            held = link[1] == suspect[0] and link[2] == link_hash(suspect[1], *event)
            return report(_changed(suspect[0], event_changed=held))
        if link is None:
            return report(
                ChainBreak(position, "hash missing", "the event has no link in the chain")
            )
        if event is None:
            return report(
                ChainBreak(position, "row missing", "the event was removed; its link remains")
            )
        if link[1] != prev_id:
            missing = link[1] if link[1] > prev_id else position
            return report(
                ChainBreak(
                    missing,
                    "row missing",
                    f"position {position} is chained to {link[1]}, but the log goes from "
                    f"{prev_id or 'its start'} to {position}",
                )
            )
        if link[2] != link_hash(prev, *event):
            suspect = (position, link[2])
            continue
        prev_id, prev, verified = position, link[2], verified + 1
        if expected_head is not None and prev == expected_head:
            found = True
    if suspect is not None:
        return report(_changed(suspect[0], event_changed=None))
    return report(None)


def _changed(position: int, *, event_changed: bool | None) -> ChainBreak:
    """``event_changed``: the next link tells which changed; ``None`` when it cannot."""
    if event_changed is None:
        return ChainBreak(
            position, "state changed", "the event or its stored hash differs from what was chained"
        )
    if event_changed:
        return ChainBreak(
            position,
            "state changed",
            "the stored event (originator id, version, topic or state) differs from what "
            "was chained",
        )
    return ChainBreak(position, "hash changed", "the stored link was rewritten")
