#!/usr/bin/env python3
"""Measure the projections: rebuild rate and peak memory, and audit query latency.

Usage::

    .venv/bin/python scripts/bench_projections.py [--events N] [--database-url URL]
                                                  [--queries Q] [--repeats R] [--quick]

1. **Generate** (once per URL; reused when the ledger already holds ``N`` events): a realistic
   ledger through ``LedgerApp`` and the in-memory fakes of both systems, in rounds of 500
   account/company pairs (some person accounts and companies without ``company_id``) and then
   waves of edits on both sides, one sync cycle (``adapters.sync.cycle.run_cycle``) after each step,
   until the ledger holds ``N`` events. Default: a SQLite file ``/tmp/syncledger-bench-N.db``;
   on PostgreSQL, a ``?schema=`` of the URL is created when missing (e.g. ``bench_1m``).
2. **Rebuild**: ``Projector.rebuild()`` in a fresh child process (so its peak RSS, from
   ``getrusage``, is the rebuild's own), ``R`` times; median and spread of events/s over wall
   time and over the process's CPU time (on a shared machine the wall rate also measures the
   neighbours). The child opens the log with ``LedgerLog`` (no ledger state folded in memory).
3. **Queries**: ``Q`` calls each of ``history_account``, ``history_company``,
   ``mappings_as_of`` (random instant, first 100 rows), ``writes`` (overwrites of one field,
   100 rows) and ``explain`` on random records, through ``Audit`` as the HTTP API uses it
   (``fresh=True``: each call first checks the ledger for new events); p50 and p99 in ms.

``--quick`` (what ``scripts/bench --quick`` runs): 10,000 events, 2 rebuilds, 100 queries each.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.engine import make_url

from adapters.store.database import ledger_env
from adapters.sync.cycle import run_cycle
from adapters.sync.fakes import INDUSTRIES, FakeIntercom, FakeSalesforce, catalog
from ledger.application import LedgerApp
from ledger.config import AttributeMapping, Direction, SyncConfig
from projections import models as m
from projections.page import from_us
from projections.projector import LedgerLog, Projector
from projections.queries import Audit

S2I, I2S = Direction.SALESFORCE_TO_INTERCOM, Direction.INTERCOM_TO_SALESFORCE
CONFIG = SyncConfig(
    identifier_field="AccountNumber",
    attributes=(
        AttributeMapping("name", "Name", S2I),
        AttributeMapping("custom_attributes.plan", "Plan__c", S2I, skip_if_source_empty=True),
        AttributeMapping("industry", "Industry", I2S),
        AttributeMapping("size", "NumberOfEmployees", I2S),
        AttributeMapping("website", "Website", I2S, skip_if_destination_has_value=True),
    ),
)
ROUND = 500
err = Console(stderr=True)


class Clock:
    """One second per reading from 2026-01-01: distinct, increasing instants."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def cycle(app: LedgerApp, sf: FakeSalesforce, ic: FakeIntercom) -> None:
    """One sync cycle, once the fake Intercom's webhooks are in the ledger's inbox (as the
    service's intake keeps them)."""
    if webhooks := ic.webhooks():
        app.receive(webhooks)
    run_cycle(app, sf, ic)


def generate(url: str, target: int, seed: int = 1) -> int:
    _ensure_schema(url)
    log = LedgerLog(env=ledger_env(url))  # counting needs no ledger state folded in memory
    have = log.recorder.max_notification_id() or 0
    log.close()
    if have >= target:
        return have
    if have:
        raise SystemExit(f"{url} holds {have} events, fewer than {target}: remove it first")
    app = LedgerApp(env=ledger_env(url), clock=Clock())
    app.apply_config(CONFIG, catalog())
    rng = random.Random(seed)
    sf, ic = FakeSalesforce(), FakeIntercom()
    accounts: list[str] = []
    companies: list[str] = []
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("generate", total=target)
        pairs = 0
        while (count := app.recorder.max_notification_id() or 0) < target:
            progress.update(task, completed=count)
            if pairs < target // 40:  # about a third of the events come from new pairs
                keys = [f"K-{pairs + i:07d}" for i in range(ROUND)]
                pairs += ROUND
                for k in keys:
                    accounts.append(
                        sf.create(
                            AccountNumber=k,
                            Name=f"Account {k}",
                            Industry=rng.choice([*INDUSTRIES, None]),
                            Plan__c=rng.choice(["Pro", "Free", None]),
                            Website=rng.choice([None, f"https://{k}.example"]),
                            person=rng.random() < 0.01,
                        )
                    )
                cycle(app, sf, ic)
                for k in keys:
                    companies.append(
                        ic.create(
                            k if rng.random() > 0.01 else None,
                            {
                                "name": f"Company {k}",
                                "industry": rng.choice([*INDUSTRIES, "Space Mining", None]),
                                "size": rng.choice([None, 10, 75, 300]),
                            },
                        )
                    )
                cycle(app, sf, ic)
            else:
                for sid in rng.sample(accounts, min(ROUND, len(accounts))):
                    if sf.get(sid) is not None:
                        sf.update(sid, Name=f"Renamed {rng.randrange(10**6)}")
                for iid in rng.sample(companies, min(ROUND, len(companies))):
                    if ic.get(iid) is not None:
                        ic.update(iid, industry=rng.choice(INDUSTRIES), size=rng.randrange(1000))
                cycle(app, sf, ic)
        count = app.recorder.max_notification_id() or 0
    app.close()
    return count


def _ensure_schema(url: str) -> None:
    parsed = make_url(url)
    schema = parsed.query.get("schema")
    if parsed.get_backend_name() != "postgresql" or not isinstance(schema, str):
        return
    import psycopg

    plain = parsed.difference_update_query(["schema"]).set(drivername="postgresql")
    dsn = plain.render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def rebuild_once(url: str) -> dict[str, Any]:
    """Run in the child process: rebuild and report rate and peak memory."""
    log = LedgerLog(env=ledger_env(url, create_tables=False))
    projector = Projector.open(log, url)
    started, cpu = time.perf_counter(), time.process_time()
    events = projector.rebuild()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    projector.close()
    log.close()
    peak_kb = _peak_rss_kb()
    return {
        "events": events,
        "seconds": seconds,
        "rate": events / seconds,
        "cpu_rate": events / cpu,
        "rss_mb": peak_kb / 1024,
    }


def _peak_rss_kb() -> int:
    """This process's peak resident set: ``VmHWM`` on Linux (``ru_maxrss`` would count the
    parent's size at the fork that started us), else ``getrusage``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


def bench_queries(url: str, count: int, seed: int = 2) -> dict[str, tuple[float, float]]:
    app = LedgerLog(env=ledger_env(url, create_tables=False))
    projector = Projector.open(app, url)
    projector.catch_up()
    audit = Audit(projector)
    with projector.engine.connect() as conn:
        records = conn.execute(select(m.records.c.system, m.records.c.record_id)).all()
        keys = [r[0] for r in conn.execute(select(m.mappings.c.company_id).distinct())]
        times = [r[0] for r in conn.execute(select(m.transactions.c.at_us))]
        fields = [r[0] for r in conn.execute(select(m.writes.c.field).distinct())]
    rng = random.Random(seed)
    accounts = [r.record_id for r in records if r.system == "salesforce"]
    companies = [r.record_id for r in records if r.system == "intercom"]
    queries: dict[str, Callable[[], object]] = {
        "history_account": lambda: audit.history_account(rng.choice(accounts)),
        "history_company": lambda: audit.history_company(rng.choice(companies)),
        "mappings_as_of (100 rows)": lambda: audit.mappings_as_of(
            from_us(rng.choice(times)), limit=100
        ),
        "writes overwrites_only field (100 rows)": lambda: audit.writes(
            field=rng.choice(fields), overwrites_only=True, limit=100
        ),
        "explain company_id": lambda: audit.explain(company_id=rng.choice(keys)),
    }
    found: dict[str, tuple[float, float]] = {}
    for name, query in queries.items():
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            query()
            samples.append(time.perf_counter() - started)
        found[name] = percentiles(samples)
    projector.close()
    app.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 events, a smoke run")
    parser.add_argument("--child-rebuild", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.events, args.repeats, args.queries = 10_000, 2, 100
    url = args.database_url or f"sqlite:////tmp/syncledger-bench-{args.events}.db"
    if args.child_rebuild:
        print(json.dumps(rebuild_once(url)))
        return
    started = time.perf_counter()
    events = generate(url, args.events)
    err.print(f"ledger: {events} events at {url} ({time.perf_counter() - started:.0f} s)")
    runs = []
    for _ in range(args.repeats):
        child = subprocess.run(
            [sys.executable, str(Path(__file__)), "--child-rebuild", "--events", str(args.events),
             "--database-url", url],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        runs.append(json.loads(child.stdout))
        err.print(
            f"rebuild: {runs[-1]['rate']:,.0f} events/s ({runs[-1]['cpu_rate']:,.0f}/s of CPU), "
            f"peak {runs[-1]['rss_mb']:.0f} MB"
        )
    rates = [r["rate"] for r in runs]
    cpu_rates = [r["cpu_rate"] for r in runs]
    rss = [r["rss_mb"] for r in runs]
    print(f"\n### Projections on {events:,} events ({url.split(':')[0]})\n")
    print("| measure | median | spread |")
    print("| --- | --- | --- |")
    print(
        f"| rebuild (events/s) | {statistics.median(rates):,.0f} | "
        f"{min(rates):,.0f}–{max(rates):,.0f} |"
    )
    print(
        f"| rebuild (events per CPU second) | {statistics.median(cpu_rates):,.0f} | "
        f"{min(cpu_rates):,.0f}–{max(cpu_rates):,.0f} |"
    )
    print(
        f"| rebuild peak RSS (MB) | {statistics.median(rss):.0f} | {min(rss):.0f}–{max(rss):.0f} |"
    )
    print("\n| query | p50 (ms) | p99 (ms) |")
    print("| --- | --- | --- |")
    for name, (p50, p99) in bench_queries(url, args.queries).items():
        print(f"| {name} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
