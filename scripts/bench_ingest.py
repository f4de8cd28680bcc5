"""Parts 1 and 6 of ``scripts/bench``: ledger ingest next to raw append, and how it scales.

Ingest: ``LedgerApp`` ingests Salesforce poll pages of 200 new accounts (one ``ingest()`` call,
one transaction, per page: ``AccountCreated`` + ``NotSynced`` per account and one
``LedgerAdvanced``), and eventsourcing's own ``Application`` appends exactly as many tiny events,
200 per ``save()``, on a fresh store of the same database in the same run (the workloads of
``bench_store.py``, whose own script still gives the wider comparison with
eventsourcing-sqlalchemy and single-event transactions).

Scaling: the same two workloads at growing sizes, each point in a fresh child process (so its
peak RSS is its own) on a fresh store; the rate of the last tenth of the run shows whether
appending slows down as the ledger grows.
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import Database, Sample, Section, Target, library_env, rate, ratio
from bench_store import BATCH, RawApp, Tick, account_pages, measure_ledger, measure_raw

from adapters.store.database import ledger_env
from ledger.application import LedgerApp

Progress = Callable[[str], None]


def ledger_events(n_accounts: int) -> int:
    """Events the ledger stores for ``n_accounts`` new accounts in pages of ``BATCH``."""
    return 2 * n_accounts + -(-n_accounts // BATCH)


@dataclass
class IngestRow:
    db: Database
    ledger: Sample = field(default_factory=Sample)  # events/s
    accounts: Sample = field(default_factory=Sample)  # accounts/s
    raw: Sample = field(default_factory=Sample)  # events/s, the library's recorder
    chained: Sample = field(default_factory=Sample)  # events/s, syncledger's chained recorder
    ratio: Sample = field(default_factory=Sample)  # ledger ÷ raw, paired by run
    events: int = 0


def ingest_section(
    dbs: list[Database], n_accounts: int, repeats: int, progress: Progress
) -> Section:
    started = time.perf_counter()
    rows = [IngestRow(db) for db in dbs]
    n_events = ledger_events(n_accounts)
    for rep in range(repeats):
        for row in rows:  # interleaved, so drift spreads over every row
            with row.db.fresh() as url:
                stored, seconds = measure_ledger(ledger_env(url), n_accounts, BATCH)
            row.events = stored
            ledger_rate = stored / seconds
            row.ledger.add(ledger_rate)
            row.accounts.add(n_accounts / seconds)
            with row.db.fresh() as url:
                raw_stored, raw_seconds = measure_raw(library_env(url), stored, BATCH)
            raw_rate = raw_stored / raw_seconds
            row.raw.add(raw_rate)
            with row.db.fresh() as url:
                chained_stored, chained_seconds = measure_raw(ledger_env(url), stored, BATCH)
            row.chained.add(chained_stored / chained_seconds)
            row.ratio.add(ledger_rate / raw_rate)
            progress(
                f"ingest {row.db.label} run {rep + 1}/{repeats}: ledger {ledger_rate:,.0f} ev/s, "
                f"raw {raw_rate:,.0f} ev/s"
            )
    section = Section(
        title="1. Ingest: Salesforce poll pages into the ledger, next to raw append",
        method=f"""
`LedgerApp` (the product's store configuration, `adapters.store.database.ledger_env`, which includes
the hash-chained recorder of `adapters.store.chain`; default configuration with no mappings)
ingests {n_accounts:,} new Salesforce accounts as poll pages of
{BATCH} `AccountChange` facts, one `ingest()` call per page. Each page is one transaction of
{2 * BATCH + 1} events: per account `AccountCreated` + `NotSynced` ("no Intercom company yet"),
and one `LedgerAdvanced`. The time includes catching up, deciding, folding into the in-memory
state and saving. Next to it, on a fresh store of the same database in the same run,
eventsourcing's own `Application` appends the same number of events ({n_events:,}): new tiny
aggregates, {BATCH} per `save()` (the time includes building the aggregates), once on the
library's own recorder ("raw append": the same settings without syncledger's recorder
subclass) and once on syncledger's hash-chained recorder ("raw, chained"), which shows what
the chain costs. Every measurement
starts on an empty store (a new SQLite file, or a new PostgreSQL schema). {repeats} run(s) each,
interleaved; median and min–max spread. The ratio is taken per run (ledger ÷ raw of the same
run), then its median.
""",
        header=[
            "database",
            "ledger events/s",
            "spread",
            "ledger accounts/s",
            "spread",
            "raw append events/s",
            "spread",
            "raw, chained events/s",
            "ledger ÷ raw",
            "spread",
            "events",
        ],
    )
    for row in rows:
        section.rows.append(
            [
                row.db.label,
                row.ledger.show(rate),
                row.ledger.spread(rate),
                row.accounts.show(rate),
                row.accounts.spread(rate),
                row.raw.show(rate),
                row.raw.spread(rate),
                row.chained.show(rate),
                row.ratio.show(ratio),
                row.ratio.spread(ratio),
                f"{row.events:,}",
            ]
        )
        section.targets.append(
            Target(
                f"ingest ≥ 0.5 × raw batched append ({row.db.label})",
                "≥ 0.50",
                f"{row.ratio.show(ratio)} ({row.ledger.show(rate)} vs "
                f"{row.raw.show(rate)} events/s)",
                row.ratio.median >= 0.5,
            )
        )
    section.notes.append(
        "The ledger's transactions hold 401 events against the raw rows' 200, which amortises "
        "per-transaction costs (fsync, PostgreSQL's table lock); the raw rows include building "
        "their aggregates. Both effects flatter the ledger a little."
    )
    section.seconds = time.perf_counter() - started
    return section


# --- scaling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One scaling measurement, taken in a child process."""

    events: int
    seconds: float
    last_tenth_rate: float  # events/s over the last 10 % of the run
    first_tenth_rate: float
    peak_rss_mb: float


def _ledger_point(url: str, n_accounts: int) -> Point:
    app = LedgerApp(env=ledger_env(url))
    try:
        pages = list(account_pages(n_accounts, BATCH))
        marks: list[tuple[int, float]] = [(0, 0.0)]
        stored = 0
        t0 = time.perf_counter()
        for page in pages:
            stored += app.ingest(page).count
            marks.append((stored, time.perf_counter() - t0))
        return _point(marks)
    finally:
        app.close()


def _raw_point(url: str, n_events: int) -> Point:
    app = RawApp(env=library_env(url))
    try:
        marks: list[tuple[int, float]] = [(0, 0.0)]
        stored = 0
        t0 = time.perf_counter()
        while stored < n_events:
            size = min(BATCH, n_events - stored)
            app.save(*[Tick(n=stored + i, label=f"tick-{stored + i}") for i in range(size)])
            stored += size
            marks.append((stored, time.perf_counter() - t0))
        return _point(marks)
    finally:
        app.close()


def _point(marks: list[tuple[int, float]]) -> Point:
    events, seconds = marks[-1]

    def window_rate(lo: float, hi: float) -> float:
        inside = [m for m in marks if lo * events <= m[0] <= hi * events]
        if len(inside) < 2:
            return events / seconds
        (e0, t0), (e1, t1) = inside[0], inside[-1]
        return (e1 - e0) / (t1 - t0) if t1 > t0 else float("nan")

    return Point(events, seconds, window_rate(0.9, 1.0), window_rate(0.0, 0.1), peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak RSS. ``VmHWM`` starts afresh at exec, unlike ``ru_maxrss``, which
    Linux carries over from the parent that forked the (spawned) child."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(kind: str, url: str, size: int) -> Point:
    """Run one point in a fresh (spawned) process, so peak RSS and caches are its own."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        fn = _ledger_point if kind == "ledger" else _raw_point
        return pool.apply(fn, (url, size))


@dataclass
class ScaleRow:
    db: Database
    kind: str
    events: int
    rates: Sample = field(default_factory=Sample)
    first: Sample = field(default_factory=Sample)
    last: Sample = field(default_factory=Sample)
    rss: Sample = field(default_factory=Sample)


def scaling_section(
    dbs: list[Database], sizes: list[int], repeats_for: Callable[[int], int], progress: Progress
) -> Section:
    started = time.perf_counter()
    rows: list[ScaleRow] = []
    for size in sizes:
        n_accounts = max(BATCH, size // 2 // BATCH * BATCH)
        n_events = ledger_events(n_accounts)
        plan = [ScaleRow(db, kind, n_events) for db in dbs for kind in ("ledger", "raw")]
        for rep in range(repeats_for(size)):
            for row in plan:
                with row.db.fresh() as url:
                    arg = n_accounts if row.kind == "ledger" else n_events
                    point = _in_child(row.kind, url, arg)
                row.rates.add(point.events / point.seconds)
                row.first.add(point.first_tenth_rate)
                row.last.add(point.last_tenth_rate)
                row.rss.add(point.peak_rss_mb)
                progress(
                    f"scaling {row.db.label} {row.kind} {n_events:,} events run {rep + 1}: "
                    f"{point.events / point.seconds:,.0f} ev/s, {point.peak_rss_mb:,.0f} MB"
                )
        rows += plan
    section = Section(
        title="6. Scaling: ingest cost from small to large ledgers",
        method="""
The two workloads of part 1 (ledger ingest of poll pages of 200 new accounts; eventsourcing's
raw append of as many events, 200 per transaction) at growing sizes. Each point runs in a fresh
child process (multiprocessing, spawn) on a fresh store, so its peak RSS (`VmHWM`) is its
own: the ledger keeps its whole state in memory, so its RSS grows with the number of accounts.
"first 10 %" and "last 10 %" are the rates over the first and last tenth of the events appended
in that run: if appending got slower as the store grew, the last tenth would show it.
""",
        header=[
            "database",
            "workload",
            "events",
            "events/s",
            "spread",
            "µs/event",
            "first 10 % events/s",
            "last 10 % events/s",
            "peak RSS MB",
            "runs",
        ],
    )
    for row in sorted(rows, key=lambda r: (r.db.key, r.kind, r.events)):
        section.rows.append(
            [
                row.db.label,
                "ledger ingest" if row.kind == "ledger" else "raw append",
                f"{row.events:,}",
                row.rates.show(rate),
                row.rates.spread(rate),
                f"{1e6 / row.rates.median:,.0f}",
                row.first.show(rate),
                row.last.show(rate),
                row.rss.show(rate),
                str(len(row.rates.values)),
            ]
        )
    for db in dbs:
        ledger = sorted(
            (r for r in rows if r.db is db and r.kind == "ledger"), key=lambda r: r.events
        )
        if len(ledger) >= 2:
            small, big = ledger[0], ledger[-1]
            section.notes.append(
                f"{db.label}: from {small.events:,} to {big.events:,} events the ledger's rate "
                f"goes from {small.rates.show(rate)} to {big.rates.show(rate)} events/s "
                f"({big.rates.median / small.rates.median:.2f}×), and peak RSS from "
                f"{small.rss.show(rate)} to {big.rss.show(rate)} MB."
            )
    section.seconds = time.perf_counter() - started
    return section
