"""The audit read API over the projections: mappings as of any instant, record timelines, the
write log with overwrites, explanations, ignored records, rejected values and API usage.

Used by the HTTP API and the CLI. Every query first catches the projections up with the ledger
(unless built with ``fresh=False``), so answers reflect every event committed before the call.

Signatures are a contract with the HTTP API; a change is announced here first.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, or_, select

from ledger import events as ev
from ledger.errors import SyncLedgerError
from projections import models as m
from projections.page import MAPPING_RULES, from_us, to_us
from projections.projector import Projector
from projections.views import (
    ApiUsagePoint,
    Explanation,
    IgnoredRecord,
    MappingTable,
    MappingView,
    RecordHistory,
    RejectedValue,
    TimelineEntry,
    WriteEntry,
    WriteStatusView,
)

#: Rows returned when no ``limit`` is given.
DEFAULT_LIMIT = 1000
#: The most rows one call returns.
MAX_LIMIT = 10_000
#: ``rule`` filter value for writes of mappings without rule flags.
NO_RULE = "none"
#: Most pending or failed writes an explanation lists.
EXPLAIN_WRITES = 100
SYSTEM_NAMES = {ev.INTERCOM: "Intercom", ev.SALESFORCE: "Salesforce"}


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
                position = _position_at(conn, instant)
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
        views = [_mapping(r._mapping, open_at=position) for r in rows]
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
        return [_mapping(r._mapping) for r in rows]

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
        return [_write(r._mapping) for r in rows]

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
            return _Explainer(conn).explain(company_id, intercom_id, account_id)

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
        return [RejectedValue(**_timed(r._mapping)) for r in rows]

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
        return [ApiUsagePoint(**_timed(r._mapping)) for r in rows]

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
            record = _record(conn, system, record_id)
            entries = _with_causes(conn, [_entry(r._mapping) for r in conn.execute(query)])
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


def _position_at(conn: Connection, instant: datetime) -> int:
    """The ledger position right after the last transaction committed at or before
    ``instant`` (0 before the first)."""
    t = m.transactions
    row = conn.execute(
        select(t.c.position)
        .where(t.c.at_us <= to_us(instant))
        .order_by(t.c.at_us.desc(), t.c.position.desc())
        .limit(1)
    ).first()
    return 0 if row is None else int(row.position)


def _timed(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["at"] = from_us(data.pop("at_us"))
    return data


def _mapping(row: Any, open_at: int | None = None) -> MappingView:
    """A mapping span; seen as of ``open_at``, a later end is not shown."""
    ended = row["unmapped_position"] is not None and (
        open_at is None or row["unmapped_position"] <= open_at
    )
    return MappingView(
        company_id=row["company_id"],
        intercom_id=row["intercom_id"],
        salesforce_id=row["salesforce_id"],
        identifier_field=row["identifier_field"],
        config_version=row["config_version"],
        trigger=row["trigger"],
        cause=row["cause"],
        mapped_at=from_us(row["mapped_at_us"]),
        mapped_position=row["mapped_position"],
        unmapped_at=from_us(row["unmapped_at_us"]) if ended else None,
        unmapped_position=row["unmapped_position"] if ended else None,
        unmap_reason=row["unmap_reason"] if ended else None,
        unmap_cause=row["unmap_cause"] if ended else None,
    )


def _entry(row: Any) -> TimelineEntry:
    data = _timed(row)
    for private in ("system", "record_id", "company_id", "ref"):
        data.pop(private)
    return TimelineEntry(**data)


#: references resolved per query (well under SQLite's bound-parameter limit)
CAUSES_PER_QUERY = 500


def _with_causes(conn: Connection, entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """``entries`` with each cause's position and summary, looked up by reference."""
    refs = sorted({e.cause for e in entries if e.cause})
    found: dict[str, tuple[int, str]] = {}
    t = m.timeline
    for i in range(0, len(refs), CAUSES_PER_QUERY):
        chunk = refs[i : i + CAUSES_PER_QUERY]
        rows = conn.execute(
            select(t.c.ref, t.c.position, t.c.summary)
            .where(t.c.ref.in_(chunk))
            .order_by(t.c.ref, t.c.position, t.c.seq)
        )
        for row in rows:
            found.setdefault(row.ref, (row.position, row.summary))
    return [
        e.model_copy(update={"cause_position": hit[0], "cause_summary": hit[1]})
        if e.cause and (hit := found.get(e.cause))
        else e
        for e in entries
    ]


def _write(row: Any) -> WriteEntry:
    data = _timed(row)
    data["rules"] = [r for r in MAPPING_RULES if data.pop(r)]
    return WriteEntry(**data)


def _status(row: Any) -> WriteStatusView:
    data = dict(row)
    data["planned_at"] = from_us(data.pop("planned_at_us"))
    closed = data.pop("closed_at_us")
    data["closed_at"] = None if closed is None else from_us(closed)
    return WriteStatusView(**data)


def _record(conn: Connection, system: str, record_id: str) -> dict[str, Any] | None:
    t = m.records
    row = conn.execute(select(t).where(t.c.system == system, t.c.record_id == record_id)).first()
    return None if row is None else dict(row._mapping)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


class _Explainer:
    """Builds an :class:`Explanation` from the projections, on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.position = Projector._position(conn)

    def explain(
        self, company_id: str | None, intercom_id: str | None, account_id: str | None
    ) -> Explanation:
        if account_id is not None:
            return self._record("account", ev.SALESFORCE, account_id, None)
        if intercom_id is not None:
            return self._record("company", ev.INTERCOM, intercom_id, None)
        assert company_id is not None
        t = m.records
        row = self.conn.execute(
            select(t.c.record_id)
            .where(t.c.system == ev.INTERCOM, t.c.company_id == company_id)
            .order_by(t.c.deleted, t.c.last_position.desc())
            .limit(1)
        ).first()
        if row is None:
            return self._no_company(company_id)
        return self._record("company", ev.INTERCOM, row.record_id, company_id)

    def _no_company(self, company_id: str) -> Explanation:
        t = m.records
        waiting = [
            r.record_id
            for r in self.conn.execute(
                select(t.c.record_id)
                .where(
                    t.c.system == ev.SALESFORCE,
                    t.c.company_id == company_id,
                    t.c.deleted.is_(False),
                    t.c.ignored_position.is_(None),
                )
                .order_by(t.c.record_id)
                .limit(EXPLAIN_WRITES)
            )
        ]
        summary = f"no Intercom company with company_id {company_id!r} is known to the ledger"
        if waiting:
            summary += "; Salesforce account(s) " + ", ".join(waiting) + " carry this key and wait"
        tl = m.timeline
        chain = self._entries(
            select(tl)
            .where(tl.c.company_id == company_id, tl.c.category == "not_synced")
            .order_by(tl.c.position.desc(), tl.c.seq)
            .limit(5)
        )
        return Explanation(
            subject="company",
            system="intercom",
            record_id=None,
            company_id=company_id,
            status="unknown",
            synced=False,
            summary=summary,
            chain=sorted(chain, key=lambda e: (e.position, e.seq)),
            pending_writes=[],
            failed_writes=[],
            position=self.position,
        )

    def _record(
        self, subject: str, system: str, record_id: str, company_id: str | None
    ) -> Explanation:
        record = _record(self.conn, system, record_id)
        name = SYSTEM_NAMES[system]
        noun = "company" if system == ev.INTERCOM else "account"
        base: dict[str, Any] = {
            "subject": subject,
            "system": system,
            "record_id": record_id,
            "company_id": company_id if record is None else record["company_id"],
            "position": self.position,
        }
        if record is None:
            return Explanation(
                **base,
                status="unknown",
                synced=False,
                summary=f"the ledger has never seen the {name} {noun} {record_id}",
                chain=[],
                pending_writes=[],
                failed_writes=[],
            )
        pending, failed = self._writes(system, record_id)
        base.update(pending_writes=pending, failed_writes=failed)
        tl = m.timeline
        mine = and_(tl.c.system == system, tl.c.record_id == record_id)
        if record["ignored_position"] is not None:
            decision = self._last(mine, ("ignored",))
            return Explanation(
                **base,
                status="ignored",
                synced=False,
                summary=f"never synced: {record['ignored_reason']}",
                chain=self._with_cause(decision),
            )
        if record["deleted"]:
            decision = self._last(mine, ("deletion",))
            unmapping = self._last(mine, ("unmapping",))
            at = "" if decision is None else f" at {_when(decision.at)}"
            summary = f"deleted in {name}{at}; deleted records are not synced"
            if unmapping is not None:
                summary += f" (mapping ended: {unmapping.details.get('reason')})"
            chain = [e for e in (decision, unmapping) if e is not None]
            return Explanation(
                **base,
                status="deleted",
                synced=False,
                summary=summary,
                chain=sorted(chain, key=lambda e: (e.position, e.seq)),
            )
        span = self._open_span(system, record_id)
        if span is not None:
            view = _mapping(span)
            other = view.salesforce_id if system == ev.INTERCOM else view.intercom_id
            other_noun = "account" if system == ev.INTERCOM else "company"
            summary = (
                f"synced: mapped to {other_noun} {other} by {view.identifier_field} = "
                f"{view.company_id!r} at {_when(view.mapped_at)} under configuration "
                f"v{view.config_version} ({view.trigger})"
            )
            if pending:
                summary += f"; {len(pending)} write(s) pending"
            if failed:
                summary += f"; {len(failed)} write(s) failed"
            decision = self._last(and_(mine, tl.c.position == view.mapped_position), ("mapping",))
            held = self._entries(
                select(tl)
                .where(mine, tl.c.category.in_(("write_skipped", "write_rejected")))
                .where(tl.c.position >= view.mapped_position)
                .order_by(tl.c.position.desc(), tl.c.seq.desc())
                .limit(5)
            )
            chain = self._with_cause(decision) + sorted(held, key=lambda e: (e.position, e.seq))
            return Explanation(
                **base,
                status="synced",
                synced=True,
                summary=summary,
                mapping=view,
                counterpart_id=other,
                chain=chain,
            )
        decision = self._last(mine, ("not_synced", "unmapping"))
        if decision is None:
            summary = f"not synced: no sync decision has been taken for this {noun} yet"
        elif decision.category == "unmapping":
            summary = f"not synced: its mapping ended ({decision.details.get('reason')})"
        else:
            summary = decision.summary
        return Explanation(
            **base,
            status="not_synced",
            synced=False,
            summary=summary,
            chain=self._with_cause(decision),
        )

    def _entries(self, query: Select[Any]) -> list[TimelineEntry]:
        return [_entry(r._mapping) for r in self.conn.execute(query)]

    def _last(self, where: Any, categories: Sequence[str]) -> TimelineEntry | None:
        tl = m.timeline
        found = self._entries(
            select(tl)
            .where(where, tl.c.category.in_(categories))
            .order_by(tl.c.position.desc(), tl.c.seq.desc())
            .limit(1)
        )
        return found[0] if found else None

    def _with_cause(self, decision: TimelineEntry | None) -> list[TimelineEntry]:
        """The decision, preceded by the event that caused it."""
        if decision is None:
            return []
        chain = [decision]
        if decision.cause:
            tl = m.timeline
            cause = self._entries(
                select(tl).where(tl.c.ref == decision.cause).order_by(tl.c.seq).limit(1)
            )
            chain = cause + chain
        return chain

    def _open_span(self, system: str, record_id: str) -> dict[str, Any] | None:
        t = m.mappings
        column = t.c.intercom_id if system == ev.INTERCOM else t.c.salesforce_id
        row = self.conn.execute(
            select(t)
            .where(column == record_id, t.c.unmapped_position.is_(None))
            .order_by(t.c.mapped_position.desc())
            .limit(1)
        ).first()
        return None if row is None else dict(row._mapping)

    def _writes(
        self, system: str, record_id: str
    ) -> tuple[list[WriteStatusView], list[WriteStatusView]]:
        t = m.write_status
        found: dict[str, list[WriteStatusView]] = {"pending": [], "failed": []}
        for group, statuses in (("pending", ("planned", "retrying")), ("failed", ("failed",))):
            rows: dict[str, Any] = {}
            for where in (
                and_(t.c.system == system, t.c.record_id == record_id),
                and_(t.c.source_system == system, t.c.source_record_id == record_id),
            ):
                query = (
                    select(t)
                    .where(where, t.c.status.in_(statuses))
                    .order_by(t.c.planned_position.desc())
                    .limit(EXPLAIN_WRITES)
                )
                rows.update((r.write_id, r._mapping) for r in self.conn.execute(query))
            newest = sorted(rows.values(), key=lambda r: r["planned_position"])[-EXPLAIN_WRITES:]
            found[group] = [_status(r) for r in newest]
        return found["pending"], found["failed"]
