"""The ledger application: records facts, takes decisions, stores both, answers questions.

:class:`LedgerApp` is an ``eventsourcing`` :class:`~eventsourcing.application.Application`.
Its state (:class:`ledger.state.LedgerState`) is the fold of the whole notification log, kept in
memory and caught up from the log before every decision, so several processes may share one
PostgreSQL database: each transaction ends with the next ``LedgerAdvanced`` event of the head
stream, and a process that lost the race to write it rolls its decision back, catches up, and
decides again.

Time comes from the injected ``clock``; ids derive from natural keys (:mod:`ledger.ids`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Notification

from ledger import events as ev
from ledger import ids
from ledger.catalog import FieldCatalog
from ledger.config import ActiveConfig, SyncConfig
from ledger.decisions import Decider, companies_in_doubt
from ledger.errors import SyncLedgerError
from ledger.facts import (
    AccountRemoval,
    CompanyChange,
    CompanyRemoval,
    Fact,
    LookupAnswer,
    WriteOutcome,
)
from ledger.lookups import LookupNeeds, lookup_needs
from ledger.replay_backfill import PREVIEW_STREAM, decide_keys
from ledger.state import IdentityLink, LedgerState, PendingWrite
from ledger.validation import resolve_config

T = TypeVar("T")
Clock = Callable[[], datetime]
#: An event but for its stamp (see :meth:`LedgerApp.record_run`).
Draft = Callable[..., ev.LedgerEvent]

#: How many times a decision is retried after losing a race with another process.
MAX_ATTEMPTS = 20
#: Notifications read per query when catching up.
PAGE = 1000


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(tz=UTC)


class LedgerBusyError(SyncLedgerError, RuntimeError):
    """Another process kept winning the race to append; nothing was recorded."""


@dataclass(frozen=True)
class Recorded:
    """What one ledger transaction stored."""

    events: tuple[ev.LedgerEvent, ...]
    position: int

    @property
    def count(self) -> int:
        return len(self.events)

    def of_type(self, cls: type[ev.LedgerEvent]) -> list[ev.LedgerEvent]:
        return [e for e in self.events if isinstance(e, cls)]


class LedgerApp(Application[UUID]):
    """The sync ledger. Construct with an eventsourcing ``env`` choosing the store.

    Example::

        app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                             "SQLITE_DBNAME": "ledger.db"})
        app.apply_config(config, catalog)
        app.ingest([CompanyChange(...), AccountChange(...)])
        for write in app.pending_writes(): ...
    """

    name = "syncledger"

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = utc_now) -> None:
        super().__init__(env)
        self.clock = clock
        self.state = LedgerState()
        self._lock = threading.RLock()
        self.catch_up()

    # --- writing ---------------------------------------------------------------------------

    def ingest(
        self, facts: Iterable[Fact], summary: str = "ingest", *, taken: Iterable[str] = ()
    ) -> Recorded:
        """Record a batch of facts and every decision they lead to, in one transaction.

        Facts are taken in order; put lookup answers before the changes that needed them.
        Repeated or out-of-date facts are recognised and record nothing. ``taken`` names inbox
        notifications (:meth:`inbox`) among ``facts``: they leave the inbox in the same
        transaction, so a crash can neither lose them nor decide them twice.
        """
        batch, closing = list(facts), list(taken)

        def decide(d: Decider) -> None:
            d.ingest(batch)
            d.take(closing)

        return self._transact(summary, decide)

    def receive(
        self, notifications: Iterable[tuple[str, CompanyChange | CompanyRemoval]]
    ) -> Recorded:
        """Keep webhook notifications ``(notification_id, fact)`` in the inbox, in one
        transaction; an id received before is dropped. Cheap: nothing is decided yet."""
        batch = list(notifications)

        def decide(d: Decider) -> None:
            for notification_id, fact in batch:
                d.receive(notification_id, fact)

        return self._transact("webhooks received", decide)

    def inbox(self) -> list[tuple[str, CompanyChange | CompanyRemoval]]:
        """Notifications received and not yet decided on, oldest first."""
        with self._lock:
            self.catch_up()
            return list(self.state.inbox.items())

    def apply_config(self, config: SyncConfig, catalog: FieldCatalog) -> ActiveConfig:
        """Validate ``config`` against ``catalog`` and put it in force as the next version.

        Raises :class:`ledger.config.ConfigError` listing every problem; nothing is recorded
        then. Changing the identifier field unmatches every mapping.
        """

        def decide(d: Decider) -> ActiveConfig:
            active = resolve_config(config, catalog, version=self.state.config.version + 1)
            d.configure(active)
            return active

        result: list[ActiveConfig] = []
        self._transact("configuration", lambda d: result.append(decide(d)))
        return result[0]

    def record_outcomes(self, outcomes: Iterable[WriteOutcome]) -> Recorded:
        """Record what happened to writes the writer sent."""
        return self.ingest(outcomes, summary="write outcomes")

    def resync(self, system: str, snapshots: Sequence[Fact]) -> Recorded:
        """Ingest ``snapshots`` (reads of every record of ``system`` the ledger knew as live:
        a snapshot or a removal each) and close the pending resync, in one transaction."""
        batch = list(snapshots)
        removed = sum(isinstance(f, AccountRemoval | CompanyRemoval) for f in batch)

        def decide(d: Decider) -> None:
            d.ingest(batch)
            d.resync_completed(system, records_read=len(batch), removed=removed)

        return self._transact(f"resync {system}", decide)

    def give_up(self, write_ids: Iterable[str], rule: str, detail: str) -> Recorded:
        """Close pending writes without sending them (e.g. ``retries_exhausted``)."""
        chosen = list(write_ids)

        def decide(d: Decider) -> None:
            for wid in chosen:
                d.give_up(wid, rule, detail)

        return self._transact("give up", decide)

    def _transact(self, summary: str, decide: Callable[[Decider], Any]) -> Recorded:
        with self._lock:
            for _ in range(MAX_ATTEMPTS):
                self.catch_up()
                try:
                    with self.state.transaction():
                        decider = Decider(self.state, self.clock())
                        decide(decider)
                        if not decider.events:
                            return Recorded((), self.state.position)
                        decider.emit(
                            ev.LedgerAdvanced(
                                **decider.stamp(ids.HEAD_STREAM),
                                summary=summary,
                                events=len(decider.events),
                            )
                        )
                        recordings = self.save(*decider.events)
                except IntegrityError:
                    continue  # another process appended first: catch up and decide again
                position = max(r.notification.id for r in recordings)
                self.state.set_position(position)
                return Recorded(tuple(decider.events), position)
            raise LedgerBusyError(
                f"gave up after {MAX_ATTEMPTS} attempts: other processes kept appending"
            )

    # --- reading ---------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply events other processes appended since our position; return how many."""
        with self._lock:
            applied = 0
            for notification in self._notifications_after(self.state.position):
                event = self._decode(notification)
                if self.state.versions.get(event.originator_id, 0) < event.originator_version:
                    self.state.apply(event, notification.id)
                    applied += 1
                else:
                    self.state.set_position(notification.id)
            return applied

    def _notifications_after(
        self, position: int, stop: int | None = None
    ) -> Iterator[Notification]:
        start = position
        while True:
            page = self.recorder.select_notifications(
                start=start, limit=PAGE, stop=stop, inclusive_of_start=False
            )
            yield from page
            if len(page) < PAGE:
                return
            start = page[-1].id

    def _decode(self, notification: Notification) -> ev.LedgerEvent:
        event = self.mapper.to_domain_event(notification)
        assert isinstance(event, ev.LedgerEvent)
        return event

    def read_events(
        self, after: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, ev.LedgerEvent]]:
        """The ledger's events in order, with their positions (notification ids)."""
        for count, notification in enumerate(self._notifications_after(after)):
            if limit is not None and count >= limit:
                return
            yield notification.id, self._decode(notification)

    def state_at(self, position: int | None = None) -> LedgerState:
        """The state as it was right after ``position`` (all of it when ``None``),
        rebuilt from the stored events alone."""
        state = LedgerState()
        for notification in self._notifications_after(0, stop=position):
            state.apply(self._decode(notification), notification.id)
        return state

    def rebuild(self) -> LedgerState:
        """The whole state rebuilt from the stored events (for checks and tools)."""
        return self.state_at(None)

    @property
    def config(self) -> ActiveConfig:
        """The configuration in force."""
        return self.state.config

    def pending_writes(self, system: str | None = None) -> list[PendingWrite]:
        """Planned writes without a final outcome, in planning order."""
        with self._lock:
            self.catch_up()
            pending = self.state.pending_writes()
        return [p for p in pending if system is None or p.system == system]

    def live_record_ids(self, system: str) -> list[str]:
        """Ids of every record of ``system`` the ledger knows as live (not deleted)."""
        with self._lock:
            self.catch_up()
            if system == ev.SALESFORCE:
                accounts = self.state.accounts.values()
                return sorted(a.salesforce_id for a in accounts if not a.deleted)
            companies = self.state.companies.values()
            return sorted(c.intercom_id for c in companies if not c.deleted)

    def mappings(self) -> list[IdentityLink]:
        """The mappings in force, by company_id."""
        with self._lock:
            self.catch_up()
            return sorted(self.state.links.values(), key=lambda link: link.company_id)

    def mapping_at(self, company_id: str, position: int | None = None) -> IdentityLink | None:
        """The mapping for ``company_id`` right after ``position`` (now when ``None``)."""
        if position is None:
            self.catch_up()
            return self.state.links.get(company_id)
        return self.state_at(position).links.get(company_id)

    def companies_in_doubt(self, facts: Sequence[Fact]) -> list[str]:
        """Intercom companies to read again before ingesting ``facts``: their notifications
        repeat a known ``updated_at`` with other values, so their order is unknown (see
        :func:`ledger.decisions.companies_in_doubt`; :func:`ledger.decisions.settle`)."""
        with self._lock:
            self.catch_up()
            return companies_in_doubt(self.state, facts)

    def lookup_needs(self, facts: Sequence[Fact]) -> LookupNeeds:
        """Which counterparts to ask the other system about before ingesting ``facts``
        (see :func:`ledger.lookups.lookup_needs`)."""
        with self._lock:
            self.catch_up()
            return lookup_needs(self.state, facts)

    @staticmethod
    def lookup_answer(
        system: str, field: str, keys: Sequence[str], records: Sequence[Any]
    ) -> LookupAnswer:
        """Convenience constructor for a :class:`ledger.facts.LookupAnswer`."""
        return LookupAnswer(system, field, tuple(keys), tuple(records))

    # --- replays and backfills: runs in streams of their own ------------------------------
    #
    # A run appends to its own stream (``replay:<run_id>``, ``backfill:<run_id>``) and never
    # touches the history it read; each append is one ledger transaction like any other.

    def put_config(self, config: ActiveConfig) -> Recorded:
        """Put an already resolved configuration in force, as its own version.

        For a replay's shadow ledger, which re-derives recorded history under the configuration
        in force or a proposed one (:mod:`ledger.replay`); production uses :meth:`apply_config`.
        """
        return self._transact("configuration", lambda d: d.configure(config))

    def record_run(self, stream: UUID, drafts: Sequence[Draft]) -> Recorded:
        """Append events to a run's ``stream`` in one transaction. Each draft is an event
        class given every field but its :class:`~ledger.events.Stamp`, which the transaction
        adds: ``functools.partial(ev.ReplayPaused, run_id=..., reason=...)``."""
        chosen = list(drafts)

        def decide(d: Decider) -> None:
            for draft in chosen:
                d.emit(draft(**d.stamp(stream)))

        return self._transact(f"run {stream}", decide)

    def run_events(self, stream: UUID) -> list[ev.LedgerEvent]:
        """Every event of a run's ``stream``, in order."""
        found: list[ev.LedgerEvent] = []
        for stored in self.recorder.select_events(stream):
            event = self.mapper.to_domain_event(stored)
            assert isinstance(event, ev.LedgerEvent)
            found.append(event)
        return found

    def events_of_type(self, cls: type[T]) -> list[T]:
        """Every event of class ``cls`` in the ledger, oldest first (a topic-filtered read)."""
        topic = getattr(cls, "TOPIC", "")
        found: list[T] = []
        start = 0
        while True:
            page = self.recorder.select_notifications(
                start=start, limit=PAGE, topics=[topic], inclusive_of_start=False
            )
            for notification in page:
                event = self._decode(notification)
                assert isinstance(event, cls)
                found.append(event)
            if len(page) < PAGE:
                return found
            start = page[-1].id

    def decide_backfill(self, run_stream: UUID, run_id: str, keys: Sequence[str]) -> Recorded:
        """Map and plan every mapped attribute of ``keys`` (see :mod:`ledger.replay_backfill`),
        and note them done in the backfill's ``run_stream``, in one transaction."""
        chosen = sorted(set(keys))

        def decide(d: Decider) -> None:
            decide_keys(d, run_stream, run_id, chosen)

        return self._transact("backfill", decide)

    def preview(self, facts: Sequence[Fact], keys: Sequence[str]) -> tuple[ev.LedgerEvent, ...]:
        """What ingesting ``facts`` and then backfilling ``keys`` would record, without
        recording anything: the decisions are taken on the live state and rolled back."""
        chosen = sorted(set(keys))
        with self._lock:
            self.catch_up()
            captured: list[ev.LedgerEvent] = []
            try:
                with self.state.transaction():
                    decider = Decider(self.state, self.clock())
                    decider.ingest(facts)
                    decide_keys(decider, PREVIEW_STREAM, "preview", chosen)
                    captured = list(decider.events)
                    raise _RolledBack
            except _RolledBack:
                pass
            return tuple(captured)


class _RolledBack(Exception):
    """Ends a preview's state transaction so that everything it changed is undone."""
