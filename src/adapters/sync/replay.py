"""Replay recorded history into a Salesforce sandbox org: guard, plan, apply, resume.

The order is fixed and fails closed:

1. **Guard** (:func:`~adapters.sync.replay_request.check_target`), before anything else:
   ``SELECT Id, IsSandbox FROM Organization`` in the target. A target that is not a sandbox,
   whose org Id is not on ``SYNCLEDGER_REPLAY_ALLOWED_ORGS``, or that cannot be asked, is
   refused (:class:`ReplayRefused`, naming the failed check). Nothing was read or recorded then.
2. **Plan** (:func:`~adapters.sync.replay_plan.plan_replay`): the ledger's recorded facts in the
   window are re-derived under the chosen configuration (:mod:`ledger.replay`); the target's
   accounts carrying the decided identifier values are read (batched SOQL); each decided value
   is judged against the target's value. The run is recorded in its own stream
   (``ReplayStarted`` and every ``ReplayBatchPlanned``, one transaction) before anything is sent.
3. **Apply** (:func:`apply_run`): batch by batch (≤ 200 records, one sObject Collections
   request), each outcome recorded (``ReplayBatchApplied``). Replay is bulk work: at 40 % of the
   target's API allocation it stops (``ReplayPaused``) and can be resumed. A resumed run reads
   the target records of every batch still open first, and does not send a value the target
   already holds, so a batch sent just before a crash is not written twice.

``--dry-run`` stops after step 2 having sent nothing to the target (the run is recorded as a
dry run, for the audit trail).

The target org is reached through the port :class:`~adapters.sync.ports.SandboxOrg`; Salesforce's
(and the login to it) is :mod:`adapters.salesforce.sandbox`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from adapters.sync.ports import SandboxOrg, usage_tier
from adapters.sync.replay_plan import Planned, api_calls, plan_replay
from adapters.sync.replay_request import (
    ReplayError,
    ReplayRefused,
    ReplayRequest,
    ReplayStopped,
    TargetOrg,
    check_target,
)
from ledger import events as ev
from ledger.application import Draft, LedgerApp
from ledger.catalog import IntercomAttribute
from ledger.facts import AccountChange
from ledger.replay_batches import BatchOutcome, RecordAnswer, ReplayWrite
from ledger.replay_runs import RunStatus, replay_stream, run_status
from ledger.values import same_value

__all__ = [
    "Planned",
    "ReplayError",
    "ReplayRefused",
    "ReplayRequest",
    "ReplayResult",
    "ReplayStopped",
    "TargetOrg",
    "apply_run",
    "check_target",
    "find_resumable",
    "load_run",
    "plan_replay",
    "run_replay",
    "start_run",
]


# --- recording and applying --------------------------------------------------------------------


def start_run(
    app: LedgerApp, request: ReplayRequest, org: TargetOrg, planned: Planned, run_id: str
) -> RunStatus:
    """Record the run and its whole plan (every batch) in one transaction, before sending."""
    batches = [] if request.dry_run else planned.plan.batches()
    started = partial(
        ev.ReplayStarted,
        run_id=run_id,
        requested_by=request.requested_by,
        target_org_id=org.org_id,
        target_instance_url=org.instance_url,
        window_from=request.window_from.isoformat() if request.window_from else None,
        window_until=request.window_until.isoformat() if request.window_until else None,
        until_position=planned.until_position,
        config=planned.config.to_dict(),
        config_source=request.config_source,
        dry_run=request.dry_run,
        arguments=request.arguments(),
        batches=len(batches),
        summary={
            **planned.plan.summary(),
            "facts_replayed": planned.facts_replayed,
            "facts_before_window": planned.facts_before,
        },
    )
    items: list[Draft] = [started]
    items += [
        partial(ev.ReplayBatchPlanned, run_id=run_id, batch=n, writes=[w.stored() for w in ws])
        for n, ws in enumerate(batches, start=1)
    ]
    if request.dry_run:
        summary = planned.plan.summary()
        detail = f"{summary['writes']} write(s) to {summary['records']} record(s) planned"
        items.append(
            partial(
                ev.ReplayFinished,
                run_id=run_id,
                outcome="dry run",
                applied=0,
                failed=0,
                detail=detail,
            )
        )
    app.record_run(replay_stream(run_id), items)
    status = load_run(app, run_id)
    assert status is not None
    return status


def load_run(app: LedgerApp, run_id: str) -> RunStatus | None:
    """A run as its stream records it (``None``: no such run)."""
    return run_status(app.run_events(replay_stream(run_id)))


def find_resumable(app: LedgerApp, arguments: str) -> RunStatus | None:
    """The latest unfinished, non-dry run started with the same ``arguments``."""
    for started in reversed(app.events_of_type(ev.ReplayStarted)):
        if started.arguments == arguments and not started.dry_run:
            status = load_run(app, started.run_id)
            if status is not None and status.finished is None:
                return status
    return None


Progress = Callable[[int], None]


def apply_run(
    app: LedgerApp,
    target: SandboxOrg,
    status: RunStatus,
    *,
    resumed: bool,
    progress: Progress = lambda _records: None,
) -> RunStatus:
    """Send every batch of ``status`` still open, recording each outcome; finish the run.

    Raises :class:`ReplayStopped` (after recording ``ReplayPaused``) at the 40 % tier or when
    the target cannot be reached; running it again resumes.
    """
    stream = replay_stream(status.run_id)
    for batch in sorted(status.planned):
        writes = status.planned[batch]
        if status.is_done(batch):
            progress(len({w.record_id for w in writes}))
            continue
        _check_budget(app, target, status)
        with _paused_if_unanswered(app, target, status):
            _same_org(target, status.started.target_org_id)
            outcome = _send_batch(target, writes, recheck=resumed or batch in status.applied)
        app.record_run(
            stream,
            [
                partial(
                    ev.ReplayBatchApplied,
                    run_id=status.run_id,
                    batch=batch,
                    results=[a.stored() for a in outcome.answers],
                    already=list(outcome.already),
                    api_calls=outcome.api_calls,
                )
            ],
        )
        if any(a.may_succeed_later for a in outcome.answers):
            _pause(app, status, "the target org refused some writes for now (retryable)")
        progress(len({w.record_id for w in writes}))
    final = load_run(app, status.run_id)
    assert final is not None
    counts = final.counts()
    failed = counts["records_failed"]
    outcome_name = "completed with failures" if failed else "completed"
    detail = (
        f"{counts['records_applied']} record(s) hold the planned values; {failed} refused; "
        f"{counts['api_calls']} API call(s)"
    )
    app.record_run(
        stream,
        [
            partial(
                ev.ReplayFinished,
                run_id=status.run_id,
                outcome=outcome_name,
                applied=counts["records_applied"],
                failed=failed,
                detail=detail,
            )
        ],
    )
    done = load_run(app, status.run_id)
    assert done is not None
    return done


def _check_budget(app: LedgerApp, target: SandboxOrg, status: RunStatus) -> None:
    if usage_tier(target.api_usage()) == "normal":
        return
    with _paused_if_unanswered(app, target, status):
        usage = target.refresh_api_usage()  # Salesforce counts a rolling day: it may have fallen
    if usage_tier(usage) != "normal":
        used = f"{usage.used} of {usage.limit}" if usage else "unknown"
        allocation = usage.allocation if usage else None
        _pause(
            app,
            status,
            f"bulk work pauses at 40 % of the target org's daily API allocation (used {used}"
            f"{f', allocation {allocation}' if allocation else ''})",
        )


@contextmanager
def _paused_if_unanswered(app: LedgerApp, target: SandboxOrg, status: RunStatus) -> Iterator[None]:
    """Pause the run (:func:`_pause`) when the block fails with the target org's own error."""
    try:
        yield
    except Exception as exc:
        said = target.error_message(exc)
        if said is None:
            raise
        _pause(app, status, f"the target org stopped answering: {said}")


def _pause(app: LedgerApp, status: RunStatus, reason: str) -> None:
    app.record_run(
        replay_stream(status.run_id),
        [partial(ev.ReplayPaused, run_id=status.run_id, reason=reason)],
    )
    raise ReplayStopped(
        f"replay {status.run_id} paused: {reason}; run the same command again (or "
        f"--resume {status.run_id}) to continue",
        status.run_id,
    )


def _same_org(target: SandboxOrg, org_id: str) -> None:
    """The guard, bound to the connection that writes: before every batch, the org this
    connection writes to must still be the one the guard allowed (a session re-pointed at
    another org, or a login that now lands elsewhere, is refused)."""
    rows = target.organization()
    now = str(rows[0].id) if len(rows) == 1 else None
    if now != org_id:  # both read from Organization: the same 18-character form
        raise ReplayRefused(
            f"refused: the connection now writes to org {now or 'unknown'}, not the allowed "
            f"sandbox {org_id}; nothing more was written"
        )


def _send_batch(
    target: SandboxOrg,
    writes: list[ReplayWrite],
    *,
    recheck: bool,
) -> BatchOutcome:
    """One batch: (on resume) read the target records and drop values already there; send the
    rest in one collection request; the outcome to record."""
    values: dict[str, dict[str, Any]] = {}
    types: dict[tuple[str, str], str] = {}
    for w in writes:
        values.setdefault(w.record_id, {})[w.field] = w.value
        types[(w.record_id, w.field)] = w.type
    before = api_calls(target)
    already: list[str] = []
    if recheck:
        fields = sorted({w.field for w in writes})
        target.fields = tuple(dict.fromkeys([*target.fields, *fields]))
        current = {
            f.salesforce_id: f.fields
            for f in target.read(list(values))
            if isinstance(f, AccountChange)
        }
        for record_id in list(values):
            now = current.get(record_id, {})
            rest = {
                name: value
                for name, value in values[record_id].items()
                if not same_value(value, now.get(name), types[(record_id, name)])
            }
            if rest:
                values[record_id] = rest
            else:
                already.append(record_id)
                del values[record_id]
    results = target.write(list(values.items())) if values else []
    return BatchOutcome(
        answers=[
            RecordAnswer(r.record_id, r.ok, r.code, r.message, tuple(r.fields), r.retryable)
            for r in results
        ],
        already=already,
        api_calls=api_calls(target) - before,
    )


# --- the whole run -----------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """What :func:`run_replay` did."""

    status: RunStatus
    planned: Planned | None
    resumed: bool


def run_replay(
    app: LedgerApp,
    target: SandboxOrg,
    request: ReplayRequest,
    org: TargetOrg,
    intercom_attributes: Sequence[IntercomAttribute],
    *,
    resume: str | None = None,
    run_id: str | None = None,
    on_planned: Callable[[Planned | None, RunStatus], None] = lambda _p, _s: None,
    progress: Progress = lambda _records: None,
) -> ReplayResult:
    """Plan (or find the run to resume) and apply. The guard must have passed (``org``)."""
    status: RunStatus | None = None
    if resume is not None:
        status = load_run(app, resume)
        if status is None:
            raise ReplayError(f"no replay run {resume} in this ledger")
    elif not request.dry_run:
        status = find_resumable(app, request.arguments())
    if status is not None:
        if status.finished is not None:
            raise ReplayError(f"replay {status.run_id} already ended ({status.state})")
        if status.started.target_org_id != org.org_id:
            raise ReplayError(
                f"replay {status.run_id} targets org {status.started.target_org_id}, "
                f"not {org.org_id}; give that org's instance URL"
            )
        on_planned(None, status)
        applied = apply_run(app, target, status, resumed=True, progress=progress)
        return ReplayResult(applied, None, True)
    planned = plan_replay(app, target, request, intercom_attributes)
    status = start_run(app, request, org, planned, run_id or uuid.uuid4().hex)
    on_planned(planned, status)
    if request.dry_run:
        return ReplayResult(status, planned, False)
    applied = apply_run(app, target, status, resumed=False, progress=progress)
    return ReplayResult(applied, planned, False)
