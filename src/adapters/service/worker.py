"""The sync worker: runs sync cycles on a thread.

:class:`SyncWorker` runs sync cycles (:func:`adapters.sync.cycle.run_cycle`): a full cycle with a
Salesforce poll every ``poll_interval`` seconds, and in between a cycle without the poll as soon
as webhooks arrive (after a short pause that lets a burst gather), or while writes wait for a
retry. An outage pauses the worker with backoff; nothing is lost because every change and every
planned write is in the ledger before anything is sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.service.lease import Lease, ProcessLease
from adapters.sync.cycle import CycleReport, run_cycle
from adapters.sync.ports import AccountSystem, CompanySystem
from adapters.sync.reconcile import ReconcileReport
from ledger.application import LedgerApp
from ledger.errors import SyncLedgerError

log = logging.getLogger("syncledger")

# --- the worker ----------------------------------------------------------------------------


@dataclass
class WorkerStatus:
    """What the worker has done, for ``/health`` and logs."""

    cycles: int = 0
    polls: int = 0
    failures_in_a_row: int = 0
    last_error: str = ""
    last_cycle_at: float | None = None
    leader: bool = False
    reconciled: int = 0
    last_report: CycleReport | None = None
    totals: dict[str, int] = field(default_factory=dict)


class SyncWorker:
    """Runs sync cycles on a thread (see the module docstring)."""

    def __init__(
        self,
        app: LedgerApp,
        salesforce: AccountSystem,
        intercom: CompanySystem,
        *,
        poll_interval: float = 300.0,
        lease: Lease | None = None,
        gather: float = 0.05,
        idle_check: float = 1.0,
        retry_delay: float = 5.0,
        max_backoff: float = 60.0,
        before_cycle: Callable[[], None] = lambda: None,
        on_report: Callable[[CycleReport], None] = lambda _: None,
        reconcile: Callable[[], ReconcileReport] | None = None,
        reconcile_interval: float = 3 * 3600.0,
    ) -> None:
        self.app = app
        self.salesforce = salesforce
        self.intercom = intercom
        self.poll_interval = poll_interval
        self.lease = lease or ProcessLease()
        self.gather = gather
        self.idle_check = idle_check
        self.retry_delay = retry_delay
        self.max_backoff = max_backoff
        self.before_cycle = before_cycle
        self.on_report = on_report
        self.reconcile = reconcile
        self.reconcile_interval = reconcile_interval
        self._next_reconcile = time.monotonic()  # on start, then every reconcile_interval
        self.status = WorkerStatus()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sync-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the cycle under way, then stop (and give up the lease)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.lease.release()

    def wake(self) -> None:
        """Run a cycle soon (webhooks were kept)."""
        self._wake.set()

    def _run(self) -> None:
        next_poll = time.monotonic()
        last_cycle = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            poll = now >= next_poll
            if not poll:
                woken = self._wake.wait(min(self.idle_check, next_poll - now))
                if self._stop.is_set():
                    break
                if woken:
                    self._wake.clear()
                    self._stop.wait(self.gather)  # let a burst of webhooks gather
                elif not self._work_waiting(last_cycle):
                    continue
            if not self.lease.acquire():
                self.status.leader = False
                self._follow_leader()
                self._stop.wait(self.idle_check)
                continue
            self.status.leader = True
            self._reconcile_if_due()
            started = time.monotonic()
            try:
                self.before_cycle()
                report = run_cycle(self.app, self.salesforce, self.intercom, poll_salesforce=poll)
            except Exception as exc:
                self._failed(exc)
                next_poll = min(next_poll, time.monotonic() + self._backoff())
                self._stop.wait(self._backoff())
                continue
            last_cycle = time.monotonic()
            if poll:
                next_poll = last_cycle + self.poll_interval
                self.status.polls += 1
            self._done(report, poll, time.monotonic() - started)

    def _reconcile_if_due(self) -> None:
        """On start and every ``reconcile_interval``: keep in the inbox the Intercom changes
        whose webhooks never arrived (:mod:`adapters.sync.reconcile`); a failure is retried in
        a minute and never stops the sync."""
        if self.reconcile is None or time.monotonic() < self._next_reconcile:
            return
        try:
            found = self.reconcile()
        except Exception as exc:
            self._next_reconcile = time.monotonic() + min(60.0, self.reconcile_interval)
            log.warning("reconciliation with Intercom failed, retrying in a minute: %s", exc)
            return
        self._next_reconcile = time.monotonic() + self.reconcile_interval
        self.status.reconciled += 1
        log.info(
            "reconciled with Intercom: %d companies listed, %d changed unheard of, %d removed",
            found.scanned,
            found.changed,
            found.removed,
            extra={"scanned": found.scanned, "changed": found.changed, "removed": found.removed},
        )

    def _follow_leader(self) -> None:
        """A standby keeps its view of the ledger current (what its /health reports), so it
        is true while another process holds the lease, and ready when it takes over."""
        try:
            self.app.catch_up()
        except Exception as exc:  # the store is away: /health says so through the worker
            self.status.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("standby could not catch up with the ledger: %s", self.status.last_error)

    def _work_waiting(self, last_cycle: float) -> bool:
        """Notifications another process kept, or writes due for a retry."""
        self.app.catch_up()
        if self.app.state.inbox:
            return True
        retry_due = time.monotonic() - last_cycle >= self.retry_delay
        return retry_due and bool(self.app.state.pending)

    def _backoff(self) -> float:
        return float(min(self.max_backoff, 2 ** min(self.status.failures_in_a_row, 10)))

    def _failed(self, exc: Exception) -> None:
        self.status.failures_in_a_row += 1
        self.status.last_error = f"{type(exc).__name__}: {exc}"
        expected = isinstance(exc, SyncLedgerError)  # an outage, a refusal: said in one line
        log.warning(
            "sync cycle failed (%d in a row), retrying in %.0f s: %s",
            self.status.failures_in_a_row,
            self._backoff(),
            self.status.last_error,
            exc_info=not expected,  # anything else is a bug: its stack goes to the log
            extra={"failures_in_a_row": self.status.failures_in_a_row},
        )

    def _done(self, report: CycleReport, poll: bool, seconds: float) -> None:
        st = self.status
        if st.failures_in_a_row:
            log.info("sync resumed after %d failed cycle(s)", st.failures_in_a_row)
        st.failures_in_a_row, st.last_error = 0, ""
        st.cycles += 1
        st.last_cycle_at = time.time()
        st.last_report = report
        for name in ("facts_ingested", "mappings_made", "writes_applied", "writes_failed"):
            st.totals[name] = st.totals.get(name, 0) + int(getattr(report, name))
        st.totals["writes_skipped"] = st.totals.get("writes_skipped", 0) + report.writes_skipped
        if report.paused:
            log.warning("%s", report.paused, extra={"paused": True})
        log.info(
            "sync cycle: %d change(s), %d mapping(s) made, %d write(s) applied, %d failed, "
            "%d skipped in %.0f ms",
            report.facts_ingested,
            report.mappings_made,
            report.writes_applied,
            report.writes_failed,
            report.writes_skipped,
            seconds * 1000,
            extra={
                "cycle": st.cycles,
                "poll": poll,
                "changes": report.facts_ingested,
                "mappings_made": report.mappings_made,
                "writes_applied": report.writes_applied,
                "writes_failed": report.writes_failed,
                "writes_skipped": report.writes_skipped,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        self.on_report(report)
