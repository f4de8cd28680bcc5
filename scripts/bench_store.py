#!/usr/bin/env python3
"""Measure event-store append rates on this machine, for BENCHMARKS.md.

Usage::

    .venv/bin/python scripts/bench_store.py [--events N] [--repeats R] [--quick]
                                            [--postgres-url URL] [--only TEXT]

Measurements (each on a fresh store: a new SQLite file in a temp directory, or a new
PostgreSQL schema that is dropped afterwards):

* raw batched append: an ``Application`` subclass saving ``N`` small ``Created`` events of
  new aggregates, 200 per ``save()`` (one transaction each), on the built-in
  ``eventsourcing.sqlite`` / ``eventsourcing.postgres`` recorders (configured as syncledger
  configures them through ``adapters.store.database.ledger_env``, but with the
  library's own recorder
  instead of syncledger's hash-chained subclass) and on ``eventsourcing_sqlalchemy`` over
  SQLite and PostgreSQL (psycopg 3);
* ledger ingest: ``LedgerApp`` on the built-in stores exactly as the product stores (with the
  hash-chained recorder of ``adapters.store.chain``), default (no-mapping) configuration, ingesting
  poll pages of 200 new ``AccountChange`` facts per ``ingest()`` call;
* raw single-event append: one aggregate per ``save()``, on the built-in stores.

Each measurement runs ``R`` times; the median and the min-max spread are printed, then a
markdown table and the machine details. PostgreSQL rows are skipped, with a message, when the
server cannot be reached.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from bench_common import (
    PostgresAdmin,
    default_postgres_url,
    library_env,
    machine_info,
    product_env,
)
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from ledger.application import LedgerApp
from ledger.facts import AccountChange

BATCH = 200
DEFAULT_EVENTS = 60_000
DEFAULT_REPEATS = 3
QUICK_EVENTS = 5_000

# --- the raw workload --------------------------------------------------------------------


class Tick(Aggregate):
    """A tiny aggregate: its ``Created`` event carries an int and a short string."""

    @event("Created")
    def __init__(self, n: int, label: str) -> None:
        self.n = n
        self.label = label


class RawApp(Application[UUID]):
    """The library alone: no domain logic beyond creating aggregates."""

    name = "bench"


def raw_append(app: RawApp, n_events: int, batch: int) -> int:
    """Save ``n_events`` new aggregates, ``batch`` per transaction; return events stored."""
    stored = 0
    while stored < n_events:
        size = min(batch, n_events - stored)
        ticks = [Tick(n=stored + i, label=f"tick-{stored + i}") for i in range(size)]
        app.save(*ticks)
        stored += size
    return stored


# --- the ledger workload -----------------------------------------------------------------

MODSTAMP_BASE = datetime(2024, 1, 1, tzinfo=UTC)


def account_pages(n_accounts: int, page: int) -> Iterator[list[AccountChange]]:
    """Poll pages of new business accounts with distinct ids and AccountNumber keys."""
    for start in range(0, n_accounts, page):
        facts = []
        for i in range(start, min(start + page, n_accounts)):
            sid = f"001{i:015d}"
            stamp = (MODSTAMP_BASE + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
            facts.append(
                AccountChange(
                    salesforce_id=sid,
                    fields={
                        "Id": sid,
                        "Name": f"Account {i}",
                        "AccountNumber": f"AN-{i:08d}",
                        "Industry": "Manufacturing",
                        "NumberOfEmployees": 10 + i % 500,
                        "SystemModstamp": stamp,
                    },
                    system_modstamp=stamp,
                )
            )
        yield facts


# --- stores ------------------------------------------------------------------------------


@dataclass
class Store:
    """One way of storing events. ``open`` yields the env of a fresh, empty store."""

    key: str
    label: str
    builtin: bool
    open: Callable[[], Any]


def _close(app: Application[Any]) -> None:
    app.close()
    engine = getattr(getattr(app.factory, "datastore", None), "engine", None)
    dispose = getattr(engine, "dispose", None)
    if dispose is not None:
        dispose()  # eventsourcing_sqlalchemy's factory does not close its engine itself


def make_stores(tmp: Path, pg: PostgresAdmin | None) -> list[Store]:
    @contextmanager
    def sqlite_file(make_env: Callable[[Path], dict[str, str]]) -> Iterator[dict[str, str]]:
        path = tmp / f"{uuid.uuid4().hex}.db"
        try:
            yield make_env(path)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    @contextmanager
    def pg_schema(make_env: Callable[[str], dict[str, str]]) -> Iterator[dict[str, str]]:
        assert pg is not None
        schema = pg.create_schema()
        try:
            yield make_env(schema)
        finally:
            pg.drop_schema(schema)

    def builtin_sqlite(path: Path) -> dict[str, str]:
        return library_env(f"sqlite:///{path}")

    def sqla_sqlite(path: Path) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": f"sqlite:///{path}",
        }

    def builtin_pg(schema: str) -> dict[str, str]:
        assert pg is not None
        sep = "&" if "?" in pg.url else "?"
        return library_env(f"{pg.url}{sep}schema={schema}")

    def sqla_pg(schema: str) -> dict[str, str]:
        assert pg is not None
        return {
            "PERSISTENCE_MODULE": "eventsourcing_sqlalchemy",
            "SQLALCHEMY_URL": pg.url,
            "SQLALCHEMY_SCHEMA": schema,
        }

    stores = [
        Store("sqlite", "SQLite, built-in", True, lambda: sqlite_file(builtin_sqlite)),
        Store("sqla-sqlite", "SQLite, SQLAlchemy", False, lambda: sqlite_file(sqla_sqlite)),
    ]
    if pg is not None:
        stores += [
            Store("postgres", "PostgreSQL, built-in", True, lambda: pg_schema(builtin_pg)),
            Store("sqla-postgres", "PostgreSQL, SQLAlchemy", False, lambda: pg_schema(sqla_pg)),
        ]
    return stores


# --- measurements ------------------------------------------------------------------------


@dataclass
class Result:
    store: Store
    kind: str  # "raw-batch" | "ledger" | "raw-single"
    measurement: str
    rates: list[float] = field(default_factory=list)  # events/s, one per repeat
    account_rates: list[float] = field(default_factory=list)  # ledger only
    events: int = 0  # events stored per repeat (last repeat)
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def measure_raw(env: Mapping[str, str], n_events: int, batch: int) -> tuple[int, float]:
    app = RawApp(env=env)
    try:
        t0 = time.perf_counter()
        stored = raw_append(app, n_events, batch)
        elapsed = time.perf_counter() - t0
        max_id = app.recorder.max_notification_id() or 0
        if max_id < stored:
            raise RuntimeError(f"stored {stored} events but the log ends at {max_id}")
        return stored, elapsed
    finally:
        _close(app)


def measure_ledger(env: Mapping[str, str], n_accounts: int, page: int) -> tuple[int, float]:
    app = LedgerApp(env=env)
    try:
        pages = list(account_pages(n_accounts, page))  # built before the clock starts
        start = app.state.position
        counted = 0
        t0 = time.perf_counter()
        for facts in pages:
            counted += app.ingest(facts).count
        elapsed = time.perf_counter() - t0
        by_position = app.state.position - start
        if counted != by_position:
            raise RuntimeError(f"ingest counted {counted} events, the log moved {by_position}")
        return counted, elapsed
    finally:
        _close(app)


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def spread(values: list[float]) -> str:
    return f"{fmt_rate(min(values))}–{fmt_rate(max(values))}"


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    n_events: int = args.events
    repeats: int = args.repeats
    n_accounts = max(BATCH, (n_events // 2) // BATCH * BATCH)  # ~2 stored events per account
    n_single = max(100, n_events // 40)

    pg: PostgresAdmin | None = PostgresAdmin(args.postgres_url)
    pg_note = ""
    try:
        assert pg is not None
        pg_version = pg.check()
        pg_settings = pg.settings()
    except Exception as exc:
        pg = None
        pg_version = ""
        pg_settings = {}
        pg_note = (
            f"PostgreSQL at {args.postgres_url} is unreachable ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}); "
            "PostgreSQL rows are SKIPPED."
        )
        print(f"NOTE: {pg_note}", file=sys.stderr)

    tmp = Path(tempfile.mkdtemp(prefix="syncledger-bench-"))
    results: list[Result] = []
    try:
        stores = make_stores(tmp, pg)
        plan: list[tuple[Result, Callable[[Mapping[str, str]], tuple[int, float]]]] = []
        for s in stores:
            plan.append(
                (
                    Result(s, "raw-batch", f"raw append, {BATCH} events/txn"),
                    lambda env: measure_raw(env, n_events, BATCH),
                )
            )
        for s in stores:
            if s.builtin:
                plan.append(
                    (
                        Result(s, "ledger", f"ledger ingest, {BATCH} accounts/txn"),
                        lambda env: measure_ledger(product_env(env), n_accounts, BATCH),
                    )
                )
        for s in stores:
            if s.builtin:
                plan.append(
                    (
                        Result(s, "raw-single", "raw append, 1 event/txn"),
                        lambda env: measure_raw(env, n_single, 1),
                    )
                )
        if args.only:
            plan = [
                p
                for p in plan
                if any(o in f"{p[0].store.key}:{p[0].kind}" for o in args.only.split(","))
            ]

        for rep in range(repeats):
            # Interleave the measurements so drift (caches, other load) spreads over all rows.
            for result, fn in plan:
                with result.store.open() as env:
                    stored, elapsed = fn(env)
                result.events = stored
                result.seconds.append(elapsed)
                result.rates.append(stored / elapsed)
                if result.kind == "ledger":
                    result.account_rates.append(n_accounts / elapsed)
                print(
                    f"[{rep + 1}/{repeats}] {result.store.label:24} {result.measurement:32} "
                    f"{stored:>7} events in {elapsed:6.2f} s = {stored / elapsed:>9,.0f} ev/s",
                    file=sys.stderr,
                    flush=True,
                )
        results = [r for r, _ in plan]
    finally:
        if pg is not None:
            pg.drop_leftovers()
        shutil.rmtree(tmp, ignore_errors=True)

    print_report(results, args, n_accounts, pg_version, pg_settings, pg_note)
    print(f"\nTotal runtime: {time.perf_counter() - started:.1f} s")
    return 0


def print_report(
    results: list[Result],
    args: argparse.Namespace,
    n_accounts: int,
    pg_version: str,
    pg_settings: Mapping[str, str],
    pg_note: str,
) -> None:
    raw_builtin = {r.store.key: r for r in results if r.kind == "raw-batch" and r.store.builtin}
    raw_by_store = {r.store.key: r for r in results if r.kind == "raw-batch"}

    print(f"\n## Results (median of {args.repeats}; spread = min–max)\n")
    print("| store | measurement | events/s median | spread | N |")
    print("|---|---|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.store.label} | {r.measurement} | {fmt_rate(r.median)} | "
            f"{spread(r.rates)} | {r.events:,} |"
        )

    lines: list[str] = []
    for r in results:
        if r.kind == "ledger":
            raw = raw_builtin.get(r.store.key)
            per_txn = r.events / max(1, n_accounts // BATCH)
            line = (
                f"- {r.store.label}: ledger {fmt_rate(r.median)} events/s "
                f"({per_txn:.0f} events/txn), "
                f"{fmt_rate(statistics.median(r.account_rates))} accounts/s "
                f"(spread {spread(r.account_rates)})"
            )
            if raw is not None:
                ratio = r.median / raw.median
                verdict = "meets" if ratio >= 0.5 else "BELOW"
                line += (
                    f"; ledger ÷ raw built-in batched = {ratio:.2f} ({verdict} the ≥ 0.5 target)"
                )
            lines.append(line)
    for key, sqla_key in (("sqlite", "sqla-sqlite"), ("postgres", "sqla-postgres")):
        if key in raw_by_store and sqla_key in raw_by_store:
            b, s = raw_by_store[key], raw_by_store[sqla_key]
            lines.append(
                f"- {b.store.label} ÷ {s.store.label} (raw batched): {b.median / s.median:.2f}x"
            )
    if lines:
        print("\n## Ratios\n")
        print("\n".join(lines))

    print("\n## Machine\n")
    for k, v in machine_info(pg_version, pg_settings).items():
        print(f"- {k}: {v}")
    if pg_note:
        print(f"\nNOTE: {pg_note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"events per raw batched measurement (default {DEFAULT_EVENTS:,}; "
        f"--quick {QUICK_EVENTS:,}); the ledger ingests N/2 accounts (~N events), "
        "the single-event rows N/40 events",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help=f"runs per measurement (default {DEFAULT_REPEATS})",
    )
    parser.add_argument("--quick", action="store_true", help="small N and one repeat")
    parser.add_argument(
        "--postgres-url",
        default=default_postgres_url(),
        help="PostgreSQL database to create throw-away schemas in "
        "(default $SYNCLEDGER_BENCH_POSTGRES_URL, $SYNCLEDGER_TEST_POSTGRES_URL or the local one)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated filters on 'store:kind', e.g. 'sqlite:ledger' or 'postgres'",
    )
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = QUICK_EVENTS if args.quick else DEFAULT_EVENTS
    if args.repeats is None:
        args.repeats = 1 if args.quick else DEFAULT_REPEATS
    if args.events < 1 or args.repeats < 1:
        parser.error("--events and --repeats must be positive")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
