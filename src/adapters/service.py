"""The running service: webhook intake, the sync worker, and who may run cycles.

* :class:`WebhookIntake` takes Intercom webhooks: it verifies the signature on the raw body
  (constant time) before parsing, then hands the notification to one writer thread that keeps
  every notification waiting at that moment in the ledger's inbox in one transaction (group
  commit), and only then is the delivery answered 200. A crash after the answer loses nothing;
  a crash before it makes Intercom deliver again, and the repeat is dropped by its id.
* :class:`SyncWorker` runs sync cycles (:func:`adapters.cycle.run_cycle`) on a thread: a full
  cycle with a Salesforce poll every ``poll_interval`` seconds, and in between a cycle without
  the poll as soon as webhooks arrive (after a short pause that lets a burst gather), or while
  writes wait for a retry. An outage pauses the worker with backoff; nothing is lost because
  every change and every planned write is in the ledger before anything is sent.
* Leases: only the lease holder runs cycles, so two processes never send the same write. On
  PostgreSQL, :class:`PostgresLease` is a session advisory lock (a second ``serve`` takes over
  when the first dies); on SQLite, :func:`sqlite_process_lock` refuses a second ``serve`` at
  start.
"""

from __future__ import annotations

import concurrent.futures
import fcntl
import logging
import os
import queue
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from adapters.cycle import AccountSystem, CompanySystem, CycleReport, run_cycle
from adapters.intercom_webhooks import (
    Notification,
    WebhookRejected,
    parse_notification,
    verify_signature,
)
from ledger import events as ev
from ledger.application import LedgerApp

log = logging.getLogger("syncledger")

#: The largest webhook body accepted (Intercom's company notifications are a few KiB).
MAX_WEBHOOK_BYTES = 1_048_576


class ServiceError(RuntimeError):
    """The service cannot start or go on; the message says why and what to do."""


# --- webhook intake ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """How a webhook delivery is answered: HTTP ``status`` and a short ``detail``."""

    status: int
    detail: str


class WebhookIntake:
    """Verifies, parses and durably keeps Intercom webhooks (see the module docstring).

    :meth:`check` is the cheap part, done on the request's thread; :meth:`keep` queues a valid
    notification for the writer thread and returns a future of ``"accepted"`` or
    ``"duplicate"``. ``on_kept`` is called after each group commit (it wakes the worker).
    """

    def __init__(
        self,
        app: LedgerApp,
        client_secret: str,
        *,
        on_kept: Callable[[], None] = lambda: None,
        max_batch: int = 1000,
    ) -> None:
        self.app = app
        self._secret = client_secret
        self._on_kept = on_kept
        self._max_batch = max_batch
        Job = tuple[Notification, concurrent.futures.Future[str]]
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.kept = 0
        self.duplicates = 0
        self.rejected = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Keep what is queued, then stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def too_large(self) -> Verdict:
        """The answer to a body over :data:`MAX_WEBHOOK_BYTES` (counted as rejected)."""
        self.rejected += 1
        return Verdict(413, f"body larger than {MAX_WEBHOOK_BYTES} bytes")

    def check(self, raw_body: bytes, signature: str | None) -> Notification | Verdict:
        """The notification in ``raw_body``, or the answer refusing it (nothing is kept)."""
        if len(raw_body) > MAX_WEBHOOK_BYTES:
            return self.too_large()
        if not verify_signature(raw_body, signature, self._secret):
            self.rejected += 1
            return Verdict(401, "missing or invalid X-Hub-Signature")
        try:
            notification = parse_notification(raw_body)
        except WebhookRejected as exc:
            self.rejected += 1
            return Verdict(400, exc.reason)
        if notification.fact is None:
            return Verdict(200, f"ignored: topic {notification.topic} is not about companies")
        return notification

    def keep(self, notification: Notification) -> concurrent.futures.Future[str]:
        """Queue ``notification`` for the ledger's inbox; the future resolves once stored."""
        if self._thread is None:
            raise ServiceError("the webhook intake is not running")
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._queue.put((notification, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._store(batch)

    def _store(self, batch: list[tuple[Notification, concurrent.futures.Future[str]]]) -> None:
        try:
            recorded = self.app.receive((n.id, n.fact) for n, _ in batch if n.fact is not None)
        except Exception as exc:
            if len(batch) > 1:
                # One notification the ledger cannot keep must not cost the others theirs:
                # keep each alone (a ledger that is down refuses each, as it refused the batch).
                log.warning("could not keep %d webhooks at once (%s); one by one", len(batch), exc)
                for item in batch:
                    self._store([item])
                return
            # the ledger is unavailable or refuses this one: Intercom will deliver it again
            log.warning("could not keep webhook %s: %s", batch[0][0].id, exc)
            batch[0][1].set_exception(exc)
            return
        new = {e.notification_id for e in recorded.events if isinstance(e, ev.NotificationReceived)}
        for notification, future in batch:
            if notification.id in new:
                new.discard(notification.id)  # a second copy in the same batch is a duplicate
                self.kept += 1
                future.set_result("accepted")
            else:
                self.duplicates += 1
                future.set_result("duplicate")
        self._on_kept()


# --- leases --------------------------------------------------------------------------------


class Lease(Protocol):
    """Whether this process may run sync cycles now."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class ProcessLease:
    """Always held: the process is the only one (SQLite, memory, tests)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class PostgresLease:
    """A session-level advisory lock on the ledger's PostgreSQL database: held by one process
    at a time; released when its connection ends (also when the process dies)."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self._key = zlib.crc32(f"syncledger:{name}".encode()) - 2**31
        self._conn: Any = None

    def acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT 1")
                return True
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot reach PostgreSQL for the sync lease: %s", exc)
            self.release()
            return False
        if row and row[0]:
            log.info("holding the sync lease: this process runs the sync cycles")
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def sqlite_process_lock(database_path: str) -> IO[str]:
    """Lock ``<database>.serve.lock`` for this process's lifetime; refuse if another holds it."""
    lock_path = Path(f"{database_path}.serve.lock")
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ServiceError(
            f"another syncledger service is already running on the SQLite ledger {database_path} "
            f"(it holds {lock_path}); SQLite allows one service process: stop the other one, "
            "or use PostgreSQL (SYNCLEDGER_DATABASE_URL=postgresql+psycopg://...) to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


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
                self._stop.wait(self.idle_check)
                continue
            self.status.leader = True
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
            self._done(report)

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
        log.warning(
            "sync cycle failed (%d in a row), retrying in %.0f s: %s",
            self.status.failures_in_a_row,
            self._backoff(),
            self.status.last_error,
        )

    def _done(self, report: CycleReport) -> None:
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
            log.warning("%s", report.paused)
        if report.facts_ingested or report.writes_applied or report.writes_failed:
            log.info(
                "cycle: %d change(s), %d mapping(s) made, %d write(s) applied, %d failed, "
                "%d skipped",
                report.facts_ingested,
                report.mappings_made,
                report.writes_applied,
                report.writes_failed,
                report.writes_skipped,
            )
        self.on_report(report)
