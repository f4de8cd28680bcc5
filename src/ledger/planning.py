"""Planning attribute writes, and closing the planned writes the state no longer allows.

:class:`Planner` is the base of the :class:`~ledger.decisions.Decider`: it holds the state
and the decision's time, builds and emits events (:meth:`Planner.stamp`, :meth:`Planner.emit`),
and decides a mapped pair's attributes (:meth:`Planner.plan_sync`) under the mapping rules.
Pure: every event is applied to the state in memory; the caller stores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from ledger import events as ev
from ledger import ids
from ledger.config import Direction, ResolvedMapping
from ledger.state import IdentityLink, LedgerState, PendingWrite
from ledger.values import Converted, Rejected, convert, is_empty, same_value
from ledger.writes import AttributeDecision, PlannedWrite, RejectedWrite, SkippedWrite

E = TypeVar("E", bound=ev.LedgerEvent)
#: A record's end of a mapped pair: its system, id and current values.
End = tuple[str, str, Mapping[str, Any]]


class Planner:
    """Emits events for one ledger transaction (``events`` holds them) and plans writes."""

    def __init__(self, state: LedgerState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.events: list[ev.LedgerEvent] = []

    # --- emitting ------------------------------------------------------------------------

    def stamp(self, stream: UUID) -> ev.Stamp:
        """Where and when the next event of ``stream`` goes: build it on this, then
        :meth:`emit` it (``self.emit(ev.NotSynced(**self.stamp(stream), ...))``)."""
        return {
            "originator_id": stream,
            "originator_version": self.state.versions.get(stream, 0) + 1,
            "timestamp": self.now,
        }

    def emit(self, event: E) -> E:
        """Apply ``event`` (built on :meth:`stamp`) to the state and keep it."""
        self.state.apply(event)
        self.events.append(event)
        return event

    def _not_synced(
        self, system: str, record_id: str, reason: str, *, key: str | None, cause: str
    ) -> None:
        """Record why a change could not sync (no counterpart yet, lost a tie, no key)."""
        self.emit(
            ev.NotSynced(
                **self.stamp(ids.record_stream(system, record_id)),
                system=system,
                record_id=record_id,
                reason=reason,
                key=key,
                cause=cause,
            )
        )

    # --- attribute writes ----------------------------------------------------------------

    def plan_sync(
        self,
        direction: Direction,
        link: IdentityLink,
        only: set[str] | None,
        trigger: str,
        cause: str,
    ) -> None:
        """Plan the writes of ``direction`` for the mapped pair ``link`` under the rules:
        every mapped attribute, or only those whose source field is in ``only``. A newer plan
        supersedes a write to the same field still pending."""
        st = self.state
        (src_system, src_id, src_values), (dst_system, dst_id, dst_values) = _ends(
            st, link, direction
        )
        planned: list[PlannedWrite] = []
        skipped: list[SkippedWrite] = []
        rejected: list[RejectedWrite] = []
        for rm in st.config.mappings:
            m = rm.mapping
            if m.direction is not direction or (only is not None and m.source not in only):
                continue
            decision = AttributeDecision(
                field=m.destination,
                type=_destination_type(rm),
                source_system=src_system,
                source_record_id=src_id,
                source_field=m.source,
                source_value=src_values.get(m.source),
                before=dst_values.get(m.destination),
                mapping=m,
                skip_if_source_empty=m.skip_if_source_empty,
                skip_if_destination_has_value=m.skip_if_destination_has_value,
                config_version=st.config.version,
                company_id=link.company_id,
                trigger=trigger,
                cause=cause,
            )
            old = st.pending_by_target.get((dst_system, dst_id, m.destination))
            if old is not None:
                detail = "a newer change of the source decided this field again"
                self._skip(st.pending[old], "superseded", detail, cause)
            judged = _judge(rm, decision)
            if isinstance(judged, SkippedWrite):
                skipped.append(judged)
            elif isinstance(judged, RejectedWrite):
                rejected.append(judged)
            else:
                write_id = ids.write_id(cause, dst_system, dst_id, m.destination)
                planned.append(decision.planned(write_id, judged.value))
        if planned or skipped or rejected:
            self.emit(
                ev.SyncPlanned(
                    **self.stamp(ids.record_stream(dst_system, dst_id)),
                    system=dst_system,
                    record_id=dst_id,
                    company_id=link.company_id,
                    trigger=trigger,
                    cause=cause,
                    config_version=st.config.version,
                    planned=[w.stored() for w in planned],
                    skipped=[w.stored() for w in skipped],
                    rejected=[w.stored() for w in rejected],
                )
            )

    def _skip(self, pw: PendingWrite, rule: str, detail: str, cause: str) -> None:
        self.emit(
            ev.WriteSkipped(
                **self.stamp(ids.record_stream(pw.system, pw.record_id)),
                system=pw.system,
                record_id=pw.record_id,
                write=pw.write.stored(),
                rule=rule,
                detail=detail,
                cause=cause,
            )
        )

    def _rejudge_record(self, system: str, record_id: str, cause: str) -> None:
        """Close pending writes to or from one record that the state no longer allows."""
        self._rejudge(self.state.pending_involving(system, record_id), cause)

    def _rejudge(self, writes: list[PendingWrite], cause: str) -> None:
        for pw in writes:
            if pw.write_id not in self.state.pending:
                continue
            verdict = self._verdict(pw)
            if verdict is not None:
                self._skip(pw, verdict[0], verdict[1], cause)

    def _verdict(self, pw: PendingWrite) -> tuple[str, str] | None:
        st = self.state
        w = pw.write
        link = st.links.get(w.company_id)
        ids_now = None if link is None else {link.salesforce_id, link.intercom_id}
        if ids_now is None or {pw.record_id, w.source_record_id} != ids_now:
            return "no_mapping", "the mapping between the two records no longer exists"
        if not any(rm.mapping == w.mapping for rm in st.config.mappings):
            return "configuration_changed", "the attribute mapping is no longer configured"
        before = _values_of(st, pw.system, pw.record_id).get(pw.field)
        if same_value(pw.value, before, w.type):
            return "already_equal", "the destination already holds the value"
        if w.skip_if_destination_has_value and not is_empty(before):
            return "destination_has_value", f"the destination now has a value ({before!r})"
        return None


def _judge(rm: ResolvedMapping, d: AttributeDecision) -> SkippedWrite | RejectedWrite | Converted:
    """A rule's skip, a rejection, or else the converted value to write."""
    m = rm.mapping
    if m.skip_if_source_empty and is_empty(d.source_value):
        return d.skipped("source_empty", None)
    conversion = convert(d.source_value, rm.salesforce, rm.intercom, m.direction)
    if isinstance(conversion, Rejected):
        return d.rejected(conversion.reason)
    value = conversion.value
    if same_value(value, d.before, d.type):
        return d.skipped("already_equal", value)
    if m.skip_if_destination_has_value and not is_empty(d.before):
        return d.skipped("destination_has_value", value)
    return conversion


def _ends(st: LedgerState, link: IdentityLink, direction: Direction) -> tuple[End, End]:
    """The source and destination ends of the pair ``link`` for ``direction``."""
    account = st.accounts[link.salesforce_id]
    company = st.companies[link.intercom_id]
    salesforce: End = (ev.SALESFORCE, account.salesforce_id, account.fields)
    intercom: End = (ev.INTERCOM, company.intercom_id, company.attributes)
    if direction is Direction.INTERCOM_TO_SALESFORCE:
        return intercom, salesforce
    return salesforce, intercom


def _destination_type(rm: ResolvedMapping) -> str:
    if rm.direction is Direction.INTERCOM_TO_SALESFORCE:
        return rm.salesforce.type
    return rm.intercom.data_type


def _values_of(st: LedgerState, system: str, record_id: str) -> dict[str, Any]:
    if system == ev.SALESFORCE:
        account = st.accounts.get(record_id)
        return dict(account.fields) if account is not None else {}
    company = st.companies.get(record_id)
    return dict(company.attributes) if company is not None else {}
