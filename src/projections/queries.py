"""The audit read API over the projections: mappings as of any instant, record timelines, the
write log with overwrites, explanations, ignored records, rejected values and API usage.

Used by the HTTP API and the CLI. Every query first catches the projections up with the ledger
(unless built with ``fresh=False``), so answers reflect every event committed before the call.

Signatures are a contract with the HTTP API; a change is announced here first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, or_, select

from ledger import events as ev
from ledger.errors import SyncLedgerError
from projections import models as m
from projections.explain import Explainer
from projections.page import MAPPING_RULES, from_us, to_us
from projections.projector import Projector
from projections.row_views import (
    mapping_view,
    position_at,
    record_row,
    timed,
    timeline_entry,
    with_causes,
    write_entry,
)
from projections.views import (
    ApiUsagePoint,
    Explanation,
    IgnoredRecord,
    MappingTable,
    MappingView,
    RecordHistory,
    RejectedValue,
    WriteEntry,
)

#: Rows returned when no ``limit`` is given.
DEFAULT_LIMIT = 1000
#: The most rows one call returns.
MAX_LIMIT = 10_000
#: ``rule`` filter value for writes of mappings without rule flags.
NO_RULE = "none"


class AuditQueryError(SyncLedgerError, ValueError):
    """A query's arguments cannot be answered (the message says which and why); the HTTP API
    answers 422, the CLI prints one line."""


class Audit:
    """Read-only questions about the sync history, answered from the projections.

    Naive datetimes are taken as UTC. ``since`` is inclusive, ``until`` exclusive.
    """

    def __init__(self, projector: Projector, *, fresh: bool = True) -> None:
        self.projector = projector
        self.fresh = fresh

    def mappings_as_of(
        self,
        instant: datetime | None = None,
        *,
        position: int | None = None,
        after: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> MappingTable:
        """The mapping table as it was at ``instant`` (right after the last transaction at or
        before it), or right after ledger ``position``, or now when neither is given; ordered by
        ``company_id``, starting after the cursor ``after``. Both given: AuditQueryError."""
        _check_limit(limit)
        if instant is not None and position is not None:
            raise AuditQueryError("give an instant or a position, not both")
        if position is not None and position < 0:
            raise AuditQueryError(f"position must be 0 or more, not {position}")
        self._fresh()
        t = m.mappings
        with self._connect() as conn:
            if instant is not None:
                position = position_at(conn, instant)
            elif position is None:
                position = Projector._position(conn)
            query = select(t).where(
                t.c.mapped_position <= position,
                or_(t.c.unmapped_position.is_(None), t.c.unmapped_position > position),
            )
            if after is not None:
                query = query.where(t.c.company_id > after)
            rows = conn.execute(query.order_by(t.c.company_id).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        views = [mapping_view(r._mapping, open_at=position) for r in rows]
        return MappingTable(
            as_of=instant,
            position=position,
            mappings=views,
            next_after=rows[-1].company_id if more else None,
        )

    def mapping_history(self, company_id: str) -> list[MappingView]:
        """Every mapping ever made for the identifier value ``company_id``, oldest first."""
        self._fresh()
        t = m.mappings
        with self._connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.company_id == company_id).order_by(t.c.mapped_position)
            ).all()
        return [mapping_view(r._mapping) for r in rows]

    def history_company(
        self,
        intercom_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> RecordHistory:
        """The timeline of the Intercom company ``intercom_id`` (its Intercom id)."""
        return self._history(ev.INTERCOM, intercom_id, since, until, limit)

    def history_account(
        self,
        salesforce_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> RecordHistory:
        """The timeline of the Salesforce account ``salesforce_id``."""
        return self._history(ev.SALESFORCE, salesforce_id, since, until, limit)

    def writes(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        overwrites_only: bool = False,
        rule: str | None = None,
        *,
        record_id: str | None = None,
        company_id: str | None = None,
        after: int = 0,
        limit: int = DEFAULT_LIMIT,
    ) -> list[WriteEntry]:
        """Applied writes in ledger order, filtered: by time, destination ``field``, overwrites
        only, ``rule`` (a mapping flag that was set — ``skip_if_source_empty`` or
        ``skip_if_destination_has_value`` — or ``none`` for unconditional mappings), destination
        ``record_id``, ``company_id``; keyset-paged by ``after`` (the last position seen)."""
        _check_limit(limit)
        t = m.writes
        query = select(t).where(t.c.position > after)
        query = _between(query, t.c.at_us, since, until)
        if field is not None:
            query = query.where(t.c.field == field)
        if overwrites_only:
            query = query.where(t.c.overwrite.is_(True))
        if rule == NO_RULE:
            query = query.where(
                t.c.skip_if_source_empty.is_(False), t.c.skip_if_destination_has_value.is_(False)
            )
        elif rule in MAPPING_RULES:
            query = query.where(t.c[rule].is_(True))
        elif rule is not None:
            choices = ", ".join((NO_RULE, *MAPPING_RULES))
            raise AuditQueryError(f"unknown rule {rule!r}; use one of {choices}")
        if record_id is not None:
            query = query.where(t.c.record_id == record_id)
        if company_id is not None:
            query = query.where(t.c.company_id == company_id)
        self._fresh()
        with self._connect() as conn:
            rows = conn.execute(query.order_by(t.c.position).limit(limit)).all()
        return [write_entry(r._mapping) for r in rows]

    def explain(
        self,
        *,
        company_id: str | None = None,
        intercom_id: str | None = None,
        account_id: str | None = None,
    ) -> Explanation:
        """Why is (or isn't) this synced? Give exactly one of: ``company_id`` (the Intercom
        company_id, i.e. the identifier value), ``intercom_id`` (the Intercom company's id) or
        ``account_id`` (the Salesforce Account Id)."""
        given = {
            name: value
            for name, value in (
                ("company_id", company_id),
                ("intercom_id", intercom_id),
                ("account_id", account_id),
            )
            if value is not None
        }
        if len(given) != 1:
            raise AuditQueryError("give exactly one of company_id, intercom_id, account_id")
        self._fresh()
        with self._connect() as conn:
            return Explainer(conn).explain(company_id, intercom_id, account_id)

    def ignored(self, system: str | None = None) -> list[IgnoredRecord]:
        """Records the ledger never syncs, with the latest reason recorded for each."""
        t = m.records
        query = select(t).where(t.c.ignored_position.is_not(None))
        if system is not None:
            query = query.where(t.c.system == system)
        self._fresh()
        with self._connect() as conn:
            rows = conn.execute(query.order_by(t.c.ignored_position)).all()
        return [
            IgnoredRecord(
                system=r.system,
                record_id=r.record_id,
                reason=r.ignored_reason,
                cause=r.ignored_cause,
                at=from_us(r.ignored_at_us),
                position=r.ignored_position,
            )
            for r in rows
        ]

    def rejected(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        field: str | None = None,
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> list[RejectedValue]:
        """Values the destination could not take, in ledger order."""
        _check_limit(limit)
        t = m.rejected
        query = _between(select(t), t.c.at_us, since, until)
        if field is not None:
            query = query.where(t.c.field == field)
        self._fresh()
        with self._connect() as conn:
            rows = conn.execute(query.order_by(t.c.position, t.c.seq).limit(limit)).all()
        return [RejectedValue(**timed(r._mapping)) for r in rows]

    def api_usage(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        system: str = "salesforce",
        *,
        limit: int = DEFAULT_LIMIT,
    ) -> list[ApiUsagePoint]:
        """A system's recorded API usage over time (each ``ApiUsageObserved``), oldest first."""
        _check_limit(limit)
        t = m.api_usage
        query = _between(select(t).where(t.c.system == system), t.c.at_us, since, until)
        self._fresh()
        with self._connect() as conn:
            rows = conn.execute(query.order_by(t.c.at_us, t.c.position).limit(limit)).all()
        return [ApiUsagePoint(**timed(r._mapping)) for r in rows]

    @property
    def position(self) -> int:
        """The ledger position the answers reflect."""
        self._fresh()
        return self.projector.position

    # --- helpers ---------------------------------------------------------------------------

    def _fresh(self) -> None:
        if self.fresh:
            self.projector.catch_up()

    def _connect(self) -> Connection:
        return self.projector.engine.connect()

    def _history(
        self,
        system: str,
        record_id: str,
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
    ) -> RecordHistory:
        if limit is not None:
            _check_limit(limit)
        self._fresh()
        t = m.timeline
        query = select(t).where(t.c.system == system, t.c.record_id == record_id)
        query = _between(query, t.c.at_us, since, until).order_by(t.c.position, t.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._connect() as conn:
            record = record_row(conn, system, record_id)
            entries = with_causes(conn, [timeline_entry(r._mapping) for r in conn.execute(query)])
        return RecordHistory(
            system=system,  # type: ignore[arg-type]
            record_id=record_id,
            known=record is not None or bool(entries),
            company_id=None if record is None else record["company_id"],
            deleted=False if record is None else bool(record["deleted"]),
            entries=entries,
        )


# --- row → view ----------------------------------------------------------------------------


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")


def _between(
    query: Select[Any], column: Any, since: datetime | None, until: datetime | None
) -> Select[Any]:
    if since is not None and until is not None and until <= since:
        raise AuditQueryError("until must be later than since")
    if since is not None:
        query = query.where(column >= to_us(since))
    if until is not None:
        query = query.where(column < to_us(until))
    return query
