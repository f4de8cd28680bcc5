"""Backfill: read every account and company, map them all, sync every mapped attribute.

The bulk update the seed says Intercom's app lacks. A run (recorded in its own stream):

1. reads every account (SOQL, 2,000 a page) and every company (the scroll API) and records
   them as observed, in transactions of :data:`CHUNK` facts (``BackfillRead`` closes the
   step; a resumed run that got past it does not read again);
2. decides the identifier values in sorted batches of :data:`KEYS_PER_BATCH`
   (:mod:`ledger.replay_backfill`: map the best pair, plan every mapped attribute in both
   directions under the rules; ``BackfillKeysDecided`` notes each batch in the same
   transaction), and after each batch runs one sync cycle without a poll
   (:func:`adapters.sync.cycle.run_cycle`), whose writer reads before writing and sends the planned
   writes, 200 Salesforce records a request.

It is bulk work: before each step it stops at 40 % of the Salesforce API allocation
(:class:`BackfillPaused`); running it again resumes after the last batch decided, and sends any
write a stopped run left planned before it finishes. Nothing is written twice: writes are
planned in the ledger before they are sent and the writer records every outcome (the sync's
own outbox guarantee).

``dry_run`` reads everything, takes the same decisions on the live state and rolls them back
(:meth:`LedgerApp.preview`): nothing is recorded and nothing is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from adapters.sync.cycle import CycleReport, run_cycle
from adapters.sync.ports import AccountSystem, CompanySystem, usage_tier
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.errors import SyncLedgerError
from ledger.facts import AccountChange, CompanyChange, Fact
from ledger.replay_backfill import backfill_stream
from ledger.values import is_empty, key_of, same_value

CHUNK = 500
KEYS_PER_BATCH = 200

Progress = Callable[[str, int, int], None]
"""``(step, done, total)``: step is ``read`` or ``sync``."""


class BackfillPaused(SyncLedgerError):
    """The backfill stopped at the bulk tier (or an outage); running it again resumes."""


@dataclass
class BackfillReport:
    """What a backfill did (or, for a dry run, would do)."""

    run_id: str
    dry_run: bool
    resumed: bool = False
    accounts: int = 0
    companies: int = 0
    keys: int = 0
    cycles: CycleReport = field(default_factory=CycleReport)
    #: dry run: planned writes as ``{system, record_id, company_id, field, before, value}``
    planned: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overwrites(self) -> list[dict[str, Any]]:
        return [
            p
            for p in self.planned
            if not is_empty(p["before"]) and not same_value(p["value"], p["before"], p["type"])
        ]


def run_backfill(
    app: LedgerApp,
    salesforce: AccountSystem,
    intercom: CompanySystem,
    *,
    dry_run: bool = False,
    requested_by: str = "unknown",
    progress: Progress = lambda _s, _d, _t: None,
) -> BackfillReport:
    """Run (or resume, or preview) a backfill; see the module docstring."""
    app.catch_up()
    run_id = "" if dry_run else _unfinished(app)
    report = BackfillReport(run_id or uuid.uuid4().hex, dry_run, resumed=bool(run_id))
    stream = backfill_stream(report.run_id)
    _check_budget(salesforce)
    done = app.run_events(stream) if run_id else []
    read = next((e for e in done if isinstance(e, ev.BackfillRead)), None)
    through = max((e.through for e in done if isinstance(e, ev.BackfillKeysDecided)), default="")
    if not dry_run and not run_id:
        app.record_run(
            stream,
            [partial(ev.BackfillStarted, run_id=report.run_id, requested_by=requested_by)],
        )
    snapshots: list[Fact] = []
    if read is None:
        snapshots = _read_all(salesforce, intercom, report, progress)
        if dry_run:
            return _preview(app, snapshots, report)
        for i in range(0, len(snapshots), CHUNK):
            app.ingest(snapshots[i : i + CHUNK], summary="backfill: records read")
        app.record_run(
            stream,
            [
                partial(
                    ev.BackfillRead,
                    run_id=report.run_id,
                    accounts=report.accounts,
                    companies=report.companies,
                )
            ],
        )
    else:
        report.accounts, report.companies = read.accounts, read.companies
    keys = [k for k in _keys(app) if k > through]
    report.keys = len(keys)
    for i in range(0, len(keys), KEYS_PER_BATCH):
        _check_budget(salesforce)
        recorded = app.decide_backfill(stream, report.run_id, keys[i : i + KEYS_PER_BATCH])
        report.cycles.tally(recorded.events)
        cycle = run_cycle(app, salesforce, intercom, poll_salesforce=False)
        _merge(report.cycles, cycle)
        progress("sync", min(i + KEYS_PER_BATCH, len(keys)), len(keys))
    if app.pending_writes():
        # a run stopped during a batch's cycle (killed, or an outage) left writes planned:
        # send them before finishing, even when no key is left to decide
        _merge(report.cycles, run_cycle(app, salesforce, intercom, poll_salesforce=False))
    failed = [f for f in report.cycles.failures if not f.retryable]
    pending = len(app.pending_writes())
    still = f", {pending} still pending (the sync retries them)" if pending else ""
    app.record_run(
        stream,
        [
            partial(
                ev.BackfillFinished,
                run_id=report.run_id,
                outcome="completed with failures" if failed else "completed",
                detail=f"{report.cycles.mappings_made} mapping(s) made, "
                f"{report.cycles.writes_applied} write(s) applied, {len(failed)} failed"
                f"{still}",
            )
        ],
    )
    return report


def _unfinished(app: LedgerApp) -> str:
    finished = {e.run_id for e in app.events_of_type(ev.BackfillFinished)}
    started = [e.run_id for e in app.events_of_type(ev.BackfillStarted)]
    return next((r for r in reversed(started) if r not in finished), "")


def _check_budget(salesforce: AccountSystem) -> None:
    usage = salesforce.api_usage()
    if usage is None or usage_tier(usage) != "normal":
        usage = salesforce.refresh_api_usage()
    if usage_tier(usage) != "normal":
        used = f"{usage.used} of {usage.limit}" if usage else "unknown"
        raise BackfillPaused(
            f"backfill paused: Salesforce API usage ({used} calls today) is at or above 40 % "
            "of the allocation, where bulk work pauses; run it again later to resume"
        )


def _read_all(
    salesforce: AccountSystem,
    intercom: CompanySystem,
    report: BackfillReport,
    progress: Progress,
) -> list[Fact]:
    accounts = salesforce.every_account()
    snapshots: list[Fact] = [replace(a, kind="snapshot", source="backfill") for a in accounts]
    report.accounts = len(accounts)
    progress("read", len(accounts), 0)
    for company in intercom.every_company():
        snapshots.append(replace(company, source="backfill"))
        report.companies += 1
        if report.companies % 500 == 0:
            progress("read", report.accounts + report.companies, 0)
    progress("read", report.accounts + report.companies, report.accounts + report.companies)
    return snapshots


def _keys(app: LedgerApp, extra: Sequence[Fact] = ()) -> list[str]:
    """Identifier values with a live company and a live business account (or a mapping)."""
    st = app.state
    ident = st.config.identifier
    companies = set(st.company_by_key)
    accounts = set(st.accounts_by_key)
    for f in extra:
        if isinstance(f, CompanyChange) and f.company_id:
            companies.add(f.company_id)
        elif isinstance(f, AccountChange) and not f.is_person_account:
            key = key_of(f.fields.get(ident.name), ident.type)
            if key is not None:
                accounts.add(key)
    return sorted((companies & accounts) | set(st.links))


def _preview(app: LedgerApp, snapshots: list[Fact], report: BackfillReport) -> BackfillReport:
    keys = _keys(app, snapshots)
    report.keys = len(keys)
    events = app.preview(snapshots, keys)
    report.cycles.tally(events)
    for e in events:
        if isinstance(e, ev.SyncPlanned):
            report.planned += [
                {
                    "system": e.system,
                    "record_id": e.record_id,
                    "company_id": e.company_id,
                    "field": p.field,
                    "before": p.before,
                    "value": p.value,
                    "type": p.type,
                }
                for p in e.writes
            ]
    return report


def _merge(total: CycleReport, cycle: CycleReport) -> None:
    for name in ("mappings_made", "mappings_ended", "writes_planned", "writes_applied",
                 "writes_failed", "records_read"):  # fmt: skip
        setattr(total, name, getattr(total, name) + getattr(cycle, name))
    total.skipped_by_rule.update(cycle.skipped_by_rule)
    total.applied_by_system.update(cycle.applied_by_system)
    total.unmapped_by_reason.update(cycle.unmapped_by_reason)
    total.failures += cycle.failures
    total.overwrites += cycle.overwrites
    total.rejected += cycle.rejected
