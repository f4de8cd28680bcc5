"""Rows from attribute writes: each planned write's status, the timeline of decisions and
outcomes, the write log (with overwrites) and the rejected values."""

from __future__ import annotations

from typing import Any

from ledger import events as ev
from ledger.values import is_empty, same_value
from ledger.writes import AttributeDecision, PlannedWrite
from projections.rows import MAPPING_RULES, PageRows


class WriteRows(PageRows):
    """The handlers of ``SyncPlanned`` and the write outcomes."""

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
