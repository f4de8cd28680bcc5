"""Explanations: why is (or isn't) a company or an account synced, from the projections."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, select

from ledger import events as ev
from projections import models as m
from projections.projector import Projector
from projections.row_views import mapping_view, record_row, status_view, timeline_entry
from projections.views import Explanation, TimelineEntry, WriteStatusView

#: Most pending or failed writes an explanation lists.
EXPLAIN_WRITES = 100
SYSTEM_NAMES = {ev.INTERCOM: "Intercom", ev.SALESFORCE: "Salesforce"}


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


class Explainer:
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
        record = record_row(self.conn, system, record_id)
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
            return self._deleted(base, name, mine)
        span = self._open_span(system, record_id)
        if span is not None:
            return self._synced(base, system, span, mine, (len(pending), len(failed)))
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

    def _deleted(self, base: dict[str, Any], name: str, mine: Any) -> Explanation:
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

    def _synced(
        self,
        base: dict[str, Any],
        system: str,
        span: dict[str, Any],
        mine: Any,
        open_writes: tuple[int, int],
    ) -> Explanation:
        """A record mapped now (``open_writes``: how many of its writes are pending, failed)."""
        tl = m.timeline
        pending, failed = open_writes
        view = mapping_view(span)
        other = view.salesforce_id if system == ev.INTERCOM else view.intercom_id
        other_noun = "account" if system == ev.INTERCOM else "company"
        summary = (
            f"synced: mapped to {other_noun} {other} by {view.identifier_field} = "
            f"{view.company_id!r} at {_when(view.mapped_at)} under configuration "
            f"v{view.config_version} ({view.trigger})"
        )
        if pending:
            summary += f"; {pending} write(s) pending"
        if failed:
            summary += f"; {failed} write(s) failed"
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

    def _entries(self, query: Select[Any]) -> list[TimelineEntry]:
        return [timeline_entry(r._mapping) for r in self.conn.execute(query)]

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
            found[group] = [status_view(r) for r in newest]
        return found["pending"], found["failed"]
