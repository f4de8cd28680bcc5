"""Replay recorded history into a Salesforce sandbox org: guard, plan, apply, resume.

The order is fixed and fails closed:

1. **Guard** (:func:`check_target`), before anything else: ``SELECT Id, IsSandbox FROM
   Organization`` in the target. A target that is not a sandbox, whose org Id is not on
   ``SYNCLEDGER_REPLAY_ALLOWED_ORGS``, or that cannot be asked, is refused
   (:class:`ReplayRefused`, naming the failed check). Nothing was read or recorded then.
2. **Plan** (:func:`plan_replay`): the ledger's recorded facts in the window are re-derived
   under the chosen configuration (:mod:`ledger.replay`); the target's accounts carrying the
   decided identifier values are read (batched SOQL); each decided value is judged against the
   target's value. The run is recorded in its own stream (``ReplayStarted`` and every
   ``ReplayBatchPlanned``, one transaction) before anything is sent.
3. **Apply** (:func:`apply_run`): batch by batch (≤ 200 records, one sObject Collections
   request through :class:`~adapters.salesforce.system.SalesforceSystem`), each outcome recorded
   (``ReplayBatchApplied``). Replay is bulk work: at 40 % of the target's API allocation it
   stops (``ReplayPaused``) and can be resumed. A resumed run reads the target records of every
   batch still open first, and does not send a value the target already holds, so a batch
   sent just before a crash is not written twice.

``--dry-run`` stops after step 2 having sent nothing to the target (the run is recorded as a
dry run, for the audit trail).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from adapters.salesforce.client import SalesforceAccounts, SalesforceError
from adapters.salesforce.login import connect_with_password
from adapters.salesforce.system import SalesforceSystem
from ledger import events as ev
from ledger.application import Draft, LedgerApp
from ledger.catalog import FieldCatalog, IntercomAttribute
from ledger.config import ActiveConfig, ConfigError, Direction, parse_config
from ledger.errors import SyncLedgerError
from ledger.facts import AccountChange
from ledger.replay import ReplayPlan, plan_target, rederive
from ledger.replay_batches import BatchOutcome, RecordAnswer, ReplayWrite
from ledger.replay_runs import RunStatus, replay_stream, run_status
from ledger.validation import resolve_config
from ledger.values import same_value

__all__ = [
    "ReplayError",
    "ReplayRefused",
    "ReplayRequest",
    "ReplayStopped",
    "TargetOrg",
    "apply_run",
    "check_target",
    "find_resumable",
    "plan_replay",
    "run_replay",
    "target_accounts",
]


class ReplayError(SyncLedgerError):
    """A replay cannot go on; the message says why and what to do."""


class ReplayRefused(ReplayError):
    """The guard refused the target org (or could not confirm it): nothing was done."""


class ReplayStopped(ReplayError):
    """The run stopped before its end (budget tier, an error) and can be resumed."""

    def __init__(self, message: str, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class TargetOrg:
    """The org the guard confirmed: a sandbox on the allowlist."""

    org_id: str
    instance_url: str


@dataclass(frozen=True)
class ReplayRequest:
    """Everything a replay is asked for (CLI options, or the ``POST /replays`` body)."""

    target_instance_url: str
    target_session_id: str | None = None
    target_username: str | None = None
    target_password: str | None = None
    target_security_token: str = ""
    window_from: datetime | None = None
    window_until: datetime | None = None
    #: a proposed configuration (TOML text) and where it came from; ``None``: the one in force
    config_text: str | None = None
    config_source: str = "current"
    dry_run: bool = False
    requested_by: str = "unknown"
    target_daily_allocation: int | None = None

    def arguments(self) -> str:
        """What identifies the request: a restart with the same arguments resumes its run."""
        parts = {
            "target": self.target_instance_url.rstrip("/"),
            "from": self.window_from.isoformat() if self.window_from else None,
            "until": self.window_until.isoformat() if self.window_until else None,
            "config": hashlib.sha256(self.config_text.encode()).hexdigest()
            if self.config_text is not None
            else "current",
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


# --- the target org ----------------------------------------------------------------------------


@contextmanager
def target_accounts(request: ReplayRequest) -> Iterator[SalesforceAccounts]:
    """The target org's Account adapter, logged in by session id or by password."""
    url = request.target_instance_url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ReplayError(f"--target-instance-url must be http(s)://host[:port], not {url!r}")
    common: dict[str, Any] = {
        "fields": ("Name",),
        "identifier_field": "AccountNumber",
        "daily_allocation": request.target_daily_allocation,
    }
    if request.target_session_id:
        accounts = SalesforceAccounts(url, request.target_session_id, **common)
    elif request.target_username and request.target_password:
        host = parts.hostname or ""
        real = host.endswith(".salesforce.com")
        client = connect_with_password(
            request.target_username,
            request.target_password,
            request.target_security_token,
            domain=host.removesuffix(".salesforce.com") if real else "test",
            login_url=None if real else f"{parts.scheme}://{parts.netloc}",
        )
        accounts = SalesforceAccounts(client=client, **common)
    else:
        raise ReplayError(
            "give --target-session-id, or --target-username and --target-password "
            "(and --target-security-token) for the target org"
        )
    try:
        yield accounts
    finally:
        accounts.close()
        session = getattr(getattr(accounts, "_sf", None), "session", None)
        if session is not None:
            session.close()


def check_target(
    accounts: SalesforceAccounts, allowed_orgs: Sequence[str], instance_url: str
) -> TargetOrg:
    """The guard: refuse unless the target is a sandbox whose org Id is on the allowlist.

    Any failure to ask (auth, network, an unexpected answer) refuses too: fail closed.
    """
    soql = "SELECT Id, IsSandbox FROM Organization"
    try:
        rows = accounts.query(soql)
    except Exception as exc:  # every failure to confirm the org refuses: fail closed
        detail = exc.message if isinstance(exc, SalesforceError) else type(exc).__name__
        raise ReplayRefused(
            f"refused: could not confirm the target org ({soql} failed: {detail}); nothing was done"
        ) from None
    if len(rows) != 1 or not isinstance(rows[0].get("Id"), str):
        raise ReplayRefused(
            f"refused: could not confirm the target org ({soql} answered {len(rows)} rows); "
            "nothing was done"
        )
    org_id, sandbox = str(rows[0]["Id"]), rows[0].get("IsSandbox")
    failed = []
    if sandbox is not True:
        failed.append(
            f"the target org {org_id} is not a sandbox (Organization.IsSandbox = "
            f"{json.dumps(sandbox)}); a replay only ever writes to a sandbox"
        )
    if not _allowed(org_id, allowed_orgs):
        listed = ", ".join(allowed_orgs) if allowed_orgs else "empty"
        failed.append(
            f"the target org {org_id} is not on SYNCLEDGER_REPLAY_ALLOWED_ORGS ({listed})"
        )
    if failed:
        raise ReplayRefused("refused: " + "; and ".join(failed) + "; nothing was done")
    return TargetOrg(org_id, instance_url.rstrip("/"))


def _allowed(org_id: str, allowed: Sequence[str]) -> bool:
    # An 18-character Id is the 15-character one plus a case-safe suffix.
    return any(org_id == a or (len(a) == 15 and org_id[:15] == a) for a in allowed)


# --- planning ----------------------------------------------------------------------------------


@dataclass
class Planned:
    """A plan and what it was derived from."""

    plan: ReplayPlan
    config: ActiveConfig
    until_position: int
    facts_replayed: int
    facts_before: int
    target_reads: int = 0
    warnings: list[str] = field(default_factory=list)


def plan_replay(
    app: LedgerApp,
    accounts: SalesforceAccounts,
    request: ReplayRequest,
    intercom_attributes: Sequence[IntercomAttribute],
    *,
    now: datetime | None = None,
) -> Planned:
    """Re-derive the window under the chosen configuration and judge it against the target."""
    app.catch_up()
    until_position = app.state.position
    config = _chosen_config(app, accounts, request, intercom_attributes)
    derivation = rederive(
        _upto(app, until_position),
        config,
        start=request.window_from,
        until=request.window_until,
        now=now or datetime.now(UTC),
    )
    ident = config.identifier.name
    to_salesforce = [
        rm.salesforce.name
        for rm in config.mappings
        if rm.direction is Direction.INTERCOM_TO_SALESFORCE
    ]
    accounts.fields = tuple(dict.fromkeys(["Name", ident, *to_salesforce]))
    accounts.identifier_field = ident
    keys = sorted({k for (system, k, _) in derivation.decided if system == ev.SALESFORCE})
    before = _calls(accounts)
    target: list[AccountChange] = accounts.lookup(ident, keys) if keys else []
    production = {m.company_id: (m.intercom_id, m.salesforce_id) for m in app.mappings()}
    planned = Planned(
        plan_target(derivation, target, production),
        config,
        until_position,
        derivation.facts_replayed,
        derivation.facts_before,
        target_reads=_calls(accounts) - before,
    )
    if derivation.unobserved:
        planned.warnings.append(
            "no recorded observation carries "
            + ", ".join(derivation.unobserved)
            + ": the ledger never read it, so nothing can be derived from it (run `syncledger "
            "whatif identifier FIELD --refresh`, or put a configuration reading it in force "
            "first)"
        )
    return planned


def _upto(app: LedgerApp, position: int) -> Iterator[ev.LedgerEvent]:
    for pos, event in app.read_events():
        if pos > position:
            return
        yield event


def _calls(accounts: SalesforceAccounts) -> int:
    return accounts.usage.used if accounts.usage is not None else 0


def _chosen_config(
    app: LedgerApp,
    accounts: SalesforceAccounts,
    request: ReplayRequest,
    intercom_attributes: Sequence[IntercomAttribute],
) -> ActiveConfig:
    if request.config_text is None:
        if app.config.version == 0:
            raise ReplayError(
                "no configuration is in force in the ledger; give a proposed one with --config"
            )
        return app.config
    try:
        proposed = parse_config(request.config_text)
        catalog = FieldCatalog.of(accounts.describe(), intercom_attributes)
        return resolve_config(proposed, catalog, version=app.config.version + 1)
    except ConfigError as exc:
        problems = "; ".join(str(p) for p in exc.problems)
        raise ReplayError(f"{request.config_source}: configuration refused: {problems}") from None


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
    accounts: SalesforceAccounts,
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
    system = SalesforceSystem(accounts)
    for batch in sorted(status.planned):
        writes = status.planned[batch]
        if status.is_done(batch):
            progress(len({w.record_id for w in writes}))
            continue
        _check_budget(app, accounts, status)
        try:
            outcome = _send_batch(
                system, accounts, writes, recheck=resumed or batch in status.applied
            )
        except SalesforceError as exc:
            _pause(app, status, f"the target org stopped answering: {exc.message}")
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


def _check_budget(app: LedgerApp, accounts: SalesforceAccounts, status: RunStatus) -> None:
    if accounts.budget_tier() == "normal":
        return
    try:
        accounts.refresh_usage()  # Salesforce counts a rolling day: usage may have fallen
    except SalesforceError as exc:
        _pause(app, status, f"the target org stopped answering: {exc.message}")
    if accounts.budget_tier() != "normal":
        usage = accounts.usage
        used = f"{usage.used} of {usage.total}" if usage else "unknown"
        _pause(
            app,
            status,
            f"bulk work pauses at 40 % of the target org's daily API allocation (used {used}"
            f"{f', allocation {accounts.daily_allocation}' if accounts.daily_allocation else ''}"
            ")",
        )


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


def _send_batch(
    system: SalesforceSystem,
    accounts: SalesforceAccounts,
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
    before = _calls(accounts)
    already: list[str] = []
    if recheck:
        fields = sorted({w.field for w in writes})
        accounts.fields = tuple(dict.fromkeys([*accounts.fields, *fields]))
        current = {
            f.salesforce_id: f.fields
            for f in accounts.read(list(values))
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
    results = system.write(list(values.items())) if values else []
    return BatchOutcome(
        answers=[
            RecordAnswer(r.record_id, r.ok, r.code, r.message, tuple(r.fields), r.retryable)
            for r in results
        ],
        already=already,
        api_calls=_calls(accounts) - before,
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
    accounts: SalesforceAccounts,
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
        applied = apply_run(app, accounts, status, resumed=True, progress=progress)
        return ReplayResult(applied, None, True)
    planned = plan_replay(app, accounts, request, intercom_attributes)
    status = start_run(app, request, org, planned, run_id or uuid.uuid4().hex)
    on_planned(planned, status)
    if request.dry_run:
        return ReplayResult(status, planned, False)
    applied = apply_run(app, accounts, status, resumed=False, progress=progress)
    return ReplayResult(applied, planned, False)
