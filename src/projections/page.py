"""One page of ledger events turned into read-model rows (pure: no I/O here).

A :class:`Page` is given the rows of the stateful tables it will touch (records, open mapping
spans, write statuses), loaded by the projector beforehand; it appends new rows to ``inserts``
and changes the loaded ones in place (``dirty``). The projector then writes both in one
transaction with the tracking position.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger import events as ev
from ledger.config import ActiveConfig
from ledger.values import is_empty, key_of, same_value
from ledger.writes import AttributeDecision, PlannedWrite

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Row = dict[str, Any]
RecordKey = tuple[str, str]

SYSTEM_NAMES = {ev.INTERCOM: "Intercom", ev.SALESFORCE: "Salesforce"}
MAPPING_RULES = ("skip_if_source_empty", "skip_if_destination_has_value")


def to_us(at: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are taken as UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def needs(
    events: Iterable[tuple[int, ev.LedgerEvent]],
) -> tuple[set[RecordKey], set[str], set[str]]:
    """What a page will touch in the stateful tables: records, write ids with an outcome, and
    identity keys whose open mapping span may change."""
    records: set[RecordKey] = set()
    write_ids: set[str] = set()
    keys: set[str] = set()
    for _, e in events:
        if isinstance(e, ev.CompanyFact | ev.CompanyDeleted):
            records.add((ev.INTERCOM, e.intercom_id))
        elif isinstance(e, ev.AccountFact | ev.AccountDeleted):
            records.add((ev.SALESFORCE, e.salesforce_id))
        elif isinstance(e, ev.RecordIgnored):
            records.add((e.system, e.record_id))
        elif isinstance(e, ev.WriteEvent):
            write_ids.add(e.write_id)
        elif isinstance(e, ev.IdentityMapped | ev.IdentityUnmapped):
            keys.add(e.company_id)
    return records, write_ids, keys


class Page:
    """Turns events into rows. ``records``, ``spans`` (open mapping span by company_id) and
    ``statuses`` (write status by write id) hold the loaded rows and are updated in place."""

    def __init__(
        self,
        config: ActiveConfig,
        records: dict[RecordKey, Row],
        spans: dict[str, Row],
        statuses: dict[str, Row],
    ) -> None:
        self.config = config
        self.records = records
        self.spans = spans
        self.statuses = statuses
        self.dirty_records: set[RecordKey] = set()
        self.dirty_spans: dict[tuple[str, int], Row] = {}
        self.dirty_statuses: set[str] = set()
        self.inserts: dict[str, list[Row]] = {
            "transactions": [],
            "configs": [],
            "timeline": [],
            "writes": [],
            "rejected": [],
            "api_usage": [],
        }
        self._pos = 0
        self._at = 0
        self._seq = 0
        self._event: ev.LedgerEvent | None = None
        self._stamp: datetime | None = None  # the last timestamp converted, and its value
        self._stamp_us = 0

    def apply(self, position: int, event: ev.LedgerEvent) -> None:
        handler = HANDLERS.get(type(event))
        if handler is None:
            return  # inbox, lookups, resyncs: not part of these read models
        if event.timestamp != self._stamp:  # a transaction's events share one
            self._stamp, self._stamp_us = event.timestamp, to_us(event.timestamp)
        self._pos, self._at, self._seq, self._event = position, self._stamp_us, 0, event
        handler(self, event)

    # --- helpers -----------------------------------------------------------------------------

    def _entry(
        self,
        system: str,
        record_id: str,
        category: str,
        summary: str,
        *,
        company_id: str | None = None,
        field: str | None = None,
        cause: str | None = None,
        config_version: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        assert self._event is not None
        self.inserts["timeline"].append(
            {
                "position": self._pos,
                "seq": self._seq,
                "system": system,
                "record_id": record_id,
                "company_id": company_id,
                "at_us": self._at,
                "event": type(self._event).__name__,
                "ref": self._event.ref,
                "category": category,
                "field": field,
                "summary": summary,
                "cause": cause,
                "config_version": self.config.version if config_version is None else config_version,
                "details": details or {},
            }
        )
        self._seq += 1

    def _record(self, system: str, record_id: str) -> Row:
        key = (system, record_id)
        row = self.records.get(key)
        if row is None:
            row = {
                "system": system,
                "record_id": record_id,
                "company_id": None,
                "deleted": False,
                "is_person_account": False,
                "last_position": self._pos,
                "last_at_us": self._at,
                "ignored_reason": None,
                "ignored_cause": None,
                "ignored_position": None,
                "ignored_at_us": None,
            }
            self.records[key] = row
        self.dirty_records.add(key)
        return row

    def _seen(self, row: Row, *, company_id: str | None, deleted: bool, person: bool) -> None:
        row.update(
            company_id=company_id,
            deleted=deleted,
            is_person_account=person,
            last_position=self._pos,
            last_at_us=self._at,
            ignored_reason=None,
            ignored_cause=None,
            ignored_position=None,
            ignored_at_us=None,
        )

    # --- configuration and transactions -------------------------------------------------------

    def _config(self, e: ev.ConfigurationApplied) -> None:
        self.config = ActiveConfig.from_dict(e.config)
        self.inserts["configs"].append(
            {
                "version": e.version,
                "position": self._pos,
                "at_us": self._at,
                "identifier_field": self.config.identifier_field,
                "previous_identifier_field": e.previous_identifier_field,
                "config": e.config,
            }
        )

    def _advanced(self, e: ev.LedgerAdvanced) -> None:
        self.inserts["transactions"].append(
            {"position": self._pos, "at_us": self._at, "summary": e.summary, "events": e.events}
        )

    def _api_usage(self, e: ev.ApiUsageObserved) -> None:
        self.inserts["api_usage"].append(
            {
                "position": self._pos,
                "at_us": self._at,
                "system": e.system,
                "used": e.used,
                "limit": e.limit,
                "allocation": e.allocation,
                "tier": e.tier,
            }
        )

    # --- observations -------------------------------------------------------------------------

    def _company(self, e: ev.CompanyFact) -> None:
        row = self._record(ev.INTERCOM, e.intercom_id)
        self._seen(row, company_id=e.company_id, deleted=False, person=False)
        verb = {ev.CompanyCreated: "created", ev.CompanyUpdated: "updated"}.get(type(e), "read")
        summary = f"{verb} in Intercom"
        if e.changed:
            summary += ": " + ", ".join(e.changed)
        self._entry(
            ev.INTERCOM,
            e.intercom_id,
            "observation",
            summary,
            company_id=e.company_id,
            details={
                "company_id": e.company_id,
                "changed": list(e.changed),
                "values": {k: e.attributes.get(k) for k in e.changed},
                "updated_at": e.updated_at,
                "source": e.source,
            },
        )

    def _company_deleted(self, e: ev.CompanyDeleted) -> None:
        row = self._record(ev.INTERCOM, e.intercom_id)
        key = e.company_id or row["company_id"]
        self._seen(row, company_id=key, deleted=True, person=False)
        self._entry(
            ev.INTERCOM,
            e.intercom_id,
            "deletion",
            "deleted in Intercom",
            company_id=key,
            details={"company_id": e.company_id, "source": e.source},
        )

    def _account(self, e: ev.AccountFact) -> None:
        ident = self.config.identifier
        key = key_of(e.fields.get(ident.name), ident.type)
        row = self._record(ev.SALESFORCE, e.salesforce_id)
        self._seen(row, company_id=key, deleted=False, person=e.is_person_account)
        details: dict[str, Any] = {
            "key": key,
            "changed": list(e.changed),
            "values": {k: e.fields.get(k) for k in e.changed},
            "system_modstamp": e.system_modstamp,
            "is_person_account": e.is_person_account,
            "source": e.source,
        }
        if isinstance(e, ev.AccountIdentifierChanged):
            summary = (
                f"{e.identifier_field} changed in Salesforce: {e.old_value!r} → {e.new_value!r}"
            )
            details.update(
                identifier_field=e.identifier_field, old_value=e.old_value, new_value=e.new_value
            )
        else:
            verb = {ev.AccountCreated: "created", ev.AccountUpdated: "updated"}.get(type(e), "read")
            summary = f"{verb} in Salesforce"
            if e.changed:
                summary += ": " + ", ".join(e.changed)
        self._entry(
            ev.SALESFORCE, e.salesforce_id, "observation", summary, company_id=key, details=details
        )

    def _account_deleted(self, e: ev.AccountDeleted) -> None:
        row = self._record(ev.SALESFORCE, e.salesforce_id)
        self._seen(row, company_id=row["company_id"], deleted=True, person=row["is_person_account"])
        self._entry(
            ev.SALESFORCE,
            e.salesforce_id,
            "deletion",
            "deleted in Salesforce",
            company_id=row["company_id"],
            details={"deleted_at": e.deleted_at, "source": e.source},
        )

    # --- decisions about records ----------------------------------------------------------------

    def _ignored(self, e: ev.RecordIgnored) -> None:
        row = self._record(e.system, e.record_id)
        row.update(
            ignored_reason=e.reason,
            ignored_cause=e.cause,
            ignored_position=self._pos,
            ignored_at_us=self._at,
        )
        self._entry(
            e.system,
            e.record_id,
            "ignored",
            f"ignored: {e.reason}",
            company_id=row["company_id"],
            cause=e.cause,
            details={"reason": e.reason},
        )

    def _not_synced(self, e: ev.NotSynced) -> None:
        self._entry(
            e.system,
            e.record_id,
            "not_synced",
            f"not synced: {e.reason}",
            company_id=e.key,
            cause=e.cause,
            details={"reason": e.reason, "key": e.key},
        )

    def _echo(self, e: ev.EchoRecognised) -> None:
        self._entry(
            e.system,
            e.record_id,
            "echo",
            "our own write seen again" + (": " + ", ".join(e.fields) if e.fields else ""),
            cause=e.cause,
            details={"fields": list(e.fields)},
        )

    # --- identity --------------------------------------------------------------------------------

    def _mapped(self, e: ev.IdentityMapped) -> None:
        old = self.spans.get(e.company_id)
        if old is not None:  # the ledger replaces a link it was never told to end
            self._close(old, "replaced by a new mapping", e.ref)
        span = {
            "company_id": e.company_id,
            "mapped_position": self._pos,
            "intercom_id": e.intercom_id,
            "salesforce_id": e.salesforce_id,
            "identifier_field": e.identifier_field,
            "config_version": e.config_version,
            "trigger": e.trigger,
            "cause": e.cause,
            "mapped_at_us": self._at,
            "unmapped_position": None,
            "unmapped_at_us": None,
            "unmap_reason": None,
            "unmap_cause": None,
        }
        self.spans[e.company_id] = span
        self.dirty_spans[(e.company_id, self._pos)] = span
        how = (
            f"by {e.identifier_field} = {e.company_id!r} ({e.trigger}, config v{e.config_version})"
        )
        self._both_sides(
            e,
            "mapping",
            lambda other: f"mapped to {other} {how}",
            {"trigger": e.trigger},
            config_version=e.config_version,
        )

    def _both_sides(
        self,
        e: ev.IdentityMapped | ev.IdentityUnmapped,
        category: str,
        summary: Callable[[str], str],
        extra: dict[str, Any],
        config_version: int | None = None,
    ) -> None:
        """One timeline entry on each record of a mapping change; ``summary`` is given the
        other record ("account …" or "company …")."""
        details = {
            "company_id": e.company_id,
            "intercom_id": e.intercom_id,
            "salesforce_id": e.salesforce_id,
            "identifier_field": e.identifier_field,
            **extra,
        }
        for system, record_id, other in (
            (ev.INTERCOM, e.intercom_id, f"account {e.salesforce_id}"),
            (ev.SALESFORCE, e.salesforce_id, f"company {e.intercom_id}"),
        ):
            self._entry(
                system,
                record_id,
                category,
                summary(other),
                company_id=e.company_id,
                cause=e.cause,
                config_version=config_version,
                details=details,
            )

    def _close(self, span: Row, reason: str, cause: str) -> None:
        span.update(
            unmapped_position=self._pos,
            unmapped_at_us=self._at,
            unmap_reason=reason,
            unmap_cause=cause,
        )
        self.dirty_spans[(span["company_id"], span["mapped_position"])] = span
        del self.spans[span["company_id"]]

    def _unmapped(self, e: ev.IdentityUnmapped) -> None:
        span = self.spans.get(e.company_id)
        if span is not None and span["salesforce_id"] == e.salesforce_id:
            self._close(span, e.reason, e.cause)
        self._both_sides(
            e, "unmapping", lambda other: f"unmapped from {other}: {e.reason}", {"reason": e.reason}
        )

    # --- writes ---------------------------------------------------------------------------

    def _planned(self, e: ev.SyncPlanned) -> None:
        for item in e.writes:
            wid = item.write_id
            self.statuses[wid] = {
                "write_id": wid,
                "system": e.system,
                "record_id": e.record_id,
                "field": item.field,
                "value": item.value,
                "source_system": item.source_system,
                "source_record_id": item.source_record_id,
                "company_id": e.company_id,
                "status": "planned",
                "attempts": 0,
                "rule": None,
                "error": None,
                "config_version": e.config_version,
                "planned_position": self._pos,
                "planned_at_us": self._at,
                "closed_position": None,
                "closed_at_us": None,
            }
            self.dirty_statuses.add(wid)
            self._entry(
                e.system,
                e.record_id,
                "write_planned",
                f"{item.field}: write planned {item.before!r} → {item.value!r} "
                f"(from {item.source_system} {item.source_field})",
                company_id=e.company_id,
                field=item.field,
                cause=e.cause,
                config_version=e.config_version,
                details=_write_details(item, item.value, item.write_id),
            )
        for skip in e.skips:
            self._entry(
                e.system,
                e.record_id,
                "write_skipped",
                f"{skip.field}: not written ({skip.rule})",
                company_id=e.company_id,
                field=skip.field,
                cause=e.cause,
                config_version=e.config_version,
                details={**_write_details(skip, skip.value), "rule": skip.rule},
            )
        for rejection in e.rejections:
            self.inserts["rejected"].append(
                {
                    "position": self._pos,
                    "seq": self._seq,
                    "at_us": self._at,
                    "system": e.system,
                    "record_id": e.record_id,
                    "company_id": e.company_id,
                    "field": rejection.field,
                    "source_field": rejection.source_field,
                    "source_value": rejection.source_value,
                    "reason": rejection.reason,
                    "config_version": e.config_version,
                    "cause": e.cause,
                }
            )
            self._entry(
                e.system,
                e.record_id,
                "write_rejected",
                f"{rejection.field}: value {rejection.source_value!r} rejected: {rejection.reason}",
                company_id=e.company_id,
                field=rejection.field,
                cause=e.cause,
                config_version=e.config_version,
                details={**_write_details(rejection, None), "reason": rejection.reason},
            )

    def _status(self, write: PlannedWrite, **changes: Any) -> None:
        wid = write.write_id
        row = self.statuses.get(wid)
        if row is not None:
            row.update(changes)
            self.dirty_statuses.add(wid)

    def _skipped(self, e: ev.WriteSkipped) -> None:
        w = e.planned_write
        self._status(
            w,
            status="skipped",
            rule=e.rule,
            error=e.detail or None,
            closed_position=self._pos,
            closed_at_us=self._at,
        )
        self._entry(
            e.system,
            e.record_id,
            "write_skipped",
            f"{w.field}: planned write dropped ({e.rule}" + (f": {e.detail})" if e.detail else ")"),
            company_id=w.company_id,
            field=w.field,
            cause=e.cause or None,
            config_version=w.config_version,
            details={**_write_details(w, w.value, w.write_id), "rule": e.rule, "detail": e.detail},
        )

    def _applied(self, e: ev.WriteApplied) -> None:
        w = e.planned_write
        value, before = w.value, e.before
        overwrite = not is_empty(before) and not same_value(value, before, w.type)
        status = self.statuses.get(w.write_id)
        self._status(w, status="applied", closed_position=self._pos, closed_at_us=self._at)
        self.inserts["writes"].append(
            {
                "position": self._pos,
                "at_us": self._at,
                "write_id": w.write_id,
                "system": e.system,
                "record_id": e.record_id,
                "company_id": w.company_id,
                "field": w.field,
                "source_system": w.source_system,
                "source_record_id": w.source_record_id,
                "source_field": w.source_field,
                "source_value": w.source_value,
                "before": before,
                "value": value,
                "overwrite": overwrite,
                "skip_if_source_empty": w.skip_if_source_empty,
                "skip_if_destination_has_value": w.skip_if_destination_has_value,
                "config_version": w.config_version,
                "trigger": w.trigger,
                "cause": w.cause,
                "planned_position": None if status is None else status["planned_position"],
                "api_call": dict(e.api_call),
            }
        )
        self._entry(
            e.system,
            e.record_id,
            "write_applied",
            f"{w.field}: {before!r} → {value!r} written" + (" (overwrite)" if overwrite else ""),
            company_id=w.company_id,
            field=w.field,
            cause=w.cause,
            config_version=w.config_version,
            details={
                **_write_details(w, w.value, w.write_id),
                "before": before,
                "overwrite": overwrite,
                "api_call": dict(e.api_call),
            },
        )

    def _failed(self, e: ev.WriteFailed) -> None:
        w = e.planned_write
        closed = {} if e.retryable else {"closed_position": self._pos, "closed_at_us": self._at}
        self._status(
            w,
            status="retrying" if e.retryable else "failed",
            attempts=e.attempt,
            error=f"{e.code}: {e.error}" if e.code else e.error,
            **closed,
        )
        self._entry(
            e.system,
            e.record_id,
            "write_failed",
            f"{w.field}: write failed (attempt {e.attempt}"
            + (f", {e.code}" if e.code else "")
            + f"): {e.error}"
            + ("; will retry" if e.retryable else ""),
            company_id=w.company_id,
            field=w.field,
            cause=w.cause,
            config_version=w.config_version,
            details={
                **_write_details(w, w.value, w.write_id),
                "error": e.error,
                "code": e.code,
                "retryable": e.retryable,
                "attempt": e.attempt,
            },
        )


#: Each event type's handler (functions, not bound methods: a page holds no reference cycle,
#: so its rows are freed as soon as it is written).
HANDLERS: dict[type[ev.LedgerEvent], Callable[[Page, Any], None]] = {
    ev.ConfigurationApplied: Page._config,
    ev.CompanyCreated: Page._company,
    ev.CompanyUpdated: Page._company,
    ev.CompanyObserved: Page._company,
    ev.CompanyDeleted: Page._company_deleted,
    ev.AccountCreated: Page._account,
    ev.AccountUpdated: Page._account,
    ev.AccountIdentifierChanged: Page._account,
    ev.AccountObserved: Page._account,
    ev.AccountDeleted: Page._account_deleted,
    ev.RecordIgnored: Page._ignored,
    ev.NotSynced: Page._not_synced,
    ev.EchoRecognised: Page._echo,
    ev.IdentityMapped: Page._mapped,
    ev.IdentityUnmapped: Page._unmapped,
    ev.SyncPlanned: Page._planned,
    ev.WriteSkipped: Page._skipped,
    ev.WriteApplied: Page._applied,
    ev.WriteFailed: Page._failed,
    ev.ApiUsageObserved: Page._api_usage,
    ev.LedgerAdvanced: Page._advanced,
}


def _write_details(
    item: AttributeDecision, value: Any, write_id: str | None = None
) -> dict[str, Any]:
    """The timeline details every attribute decision shares (``value``: the value decided,
    ``None`` for a rejected one; ``write_id``: a planned write's)."""
    rules = {
        "skip_if_source_empty": item.skip_if_source_empty,
        "skip_if_destination_has_value": item.skip_if_destination_has_value,
    }
    return {
        "write_id": write_id,
        "source_system": item.source_system,
        "source_record_id": item.source_record_id,
        "source_field": item.source_field,
        "source_value": item.source_value,
        "before": item.before,
        "value": value,
        "rules": [r for r in MAPPING_RULES if rules[r]],
        "trigger": item.trigger,
    }
