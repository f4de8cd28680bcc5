#!/usr/bin/env python3
"""Measure the Salesforce (and Intercom) API economy of the sync, end to end, for BENCHMARKS.md.

Usage::

    .venv/bin/python scripts/bench_api.py [--quick] [--accounts N] [--lookup-keys K]

Both simulators run in-process over real HTTP (uvicorn on loopback); the real adapters
(``SalesforceAccounts`` on simple-salesforce, ``IntercomCompanies`` on httpx) are wrapped as the
sync's ports (``SalesforceSystem``, ``IntercomSystem``), webhooks are delivered by the Intercom
simulator to a local receiver that verifies and parses them and, before each cycle, keeps them in
the ledger's inbox (``LedgerApp.receive``, as the service's intake does), and every phase is
one real ``run_cycle`` on a ``LedgerApp`` (in-memory store) with the demo configuration.

Every figure is read from the simulators' own call counters (``SalesforceState.meter.counters``,
``IntercomState.counters``). Counters are reset before each measured cycle, and a thin wrapper
around each port snapshots the counters before and after every port call, so each call is
attributed to the code path that made it (poll, lookup, read-before-write, write).

Phases (N = ``--accounts``, default 10,000; ``--quick``: 1,000):

A. first sync: N matched account/company pairs with equal values, seeded before the simulators
   serve (no webhooks); one cycle polls every account (watermark None) and maps the pairs;
B. Salesforce users change ``Name`` and ``Plan__c`` (both Salesforce → Intercom) on all N
   accounts, an hour after the previous poll; one cycle polls them and writes Intercom;
C. 60 s later, the next cycle: it takes the N echo webhooks of B's writes and polls again;
D. Intercom users change ``industry`` and ``size`` (both Intercom → Salesforce) on all N
   companies, an hour later; the webhooks arrive, one cycle writes Salesforce;
E. 60 s later, the next cycle polls back D's writes (echoes);
F. K new Intercom companies (default 1,800) with keys no Salesforce account carries arrive by
   webhook; one cycle asks Salesforce about the K keys.

The Salesforce simulator runs on an injected clock (advanced between phases, so the poll's
300 s overlap covers only what the phase says); the Intercom simulator's rate limit is raised
so its limiter does not stretch the wall time (calls are counted the same either way).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from bench_common import Section, Target
from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse

from adapters.demo.story import demo_config
from adapters.intercom.client import IntercomCompanies
from adapters.intercom.system import IntercomSystem
from adapters.intercom.webhooks import Notification, parse_notification, verify_signature
from adapters.salesforce.client import COLLECTION_SIZE, SalesforceAccounts
from adapters.salesforce.system import SalesforceSystem
from adapters.simulators.intercom import IntercomState, create_intercom_app
from adapters.simulators.salesforce import SalesforceState, create_salesforce_app
from adapters.simulators.server import serving
from adapters.store.database import ledger_env
from adapters.sync.cycle import CycleReport, run_cycle
from adapters.sync.ports import RecordResult, Updates
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from ledger.events import NotificationReceived
from ledger.facts import (
    AccountChange,
    AccountRemoval,
    ApiUsage,
    CompanyChange,
    CompanyRemoval,
    DeletionsMissed,
)

SECRET = "bench-secret"
SF_FIELDS = ("Name", "AccountNumber", "Plan__c", "Industry", "NumberOfEmployees", "Website")
INDUSTRIES = ("Banking", "Technology", "Retail", "Energy", "Media")
INTERCOM_DEFAULT_RATE = 1666  # calls per 10 s, the simulator's (and Intercom's) default
T = TypeVar("T")

# -- call accounting -------------------------------------------------------------------------------


class StepMeter:
    """Attributes a simulator's counter deltas to the port call (step) that caused them."""

    def __init__(self, counters: Callable[[], Mapping[str, int]]) -> None:
        self._counters = counters
        self.by_step: dict[str, Counter[str]] = {}

    def around(self, step: str, call: Callable[[], T]) -> T:
        before = dict(self._counters())
        try:
            return call()
        finally:
            after = self._counters()
            delta = Counter({k: v - before.get(k, 0) for k, v in after.items() if k != "total"})
            self.by_step.setdefault(step, Counter()).update(+delta)

    def reset(self) -> None:
        self.by_step = {}

    def calls(self, step: str | None = None, kinds: Sequence[str] | None = None) -> int:
        """Calls (not fault/limit events) of ``step`` (all steps when None), of ``kinds``."""
        return _count(self.by_step, step, kinds)


class MeteredSalesforce:
    """``cycle.AccountSystem``: the real ``SalesforceSystem``, every call attributed by step."""

    def __init__(self, inner: SalesforceSystem, meter: StepMeter) -> None:
        self.inner, self.meter = inner, meter
        self.records_written = 0
        self.fields_written = 0
        self.polled: list[AccountChange | AccountRemoval | DeletionsMissed] = []

    def changes_since(
        self, watermark: str | None
    ) -> Sequence[AccountChange | AccountRemoval | DeletionsMissed]:
        self.polled = self.meter.around("poll", lambda: self.inner.changes_since(watermark))
        return self.polled

    def lookup(self, field: str, keys: Sequence[str]) -> Sequence[AccountChange]:
        return self.meter.around("lookup", lambda: self.inner.lookup(field, keys))

    def read(self, ids: Sequence[str]) -> Sequence[AccountChange | AccountRemoval]:
        return self.meter.around("read-before-write", lambda: self.inner.read(ids))

    def write(self, updates: Updates) -> Sequence[RecordResult]:
        self.records_written += len(updates)
        self.fields_written += sum(len(values) for _, values in updates)
        return self.meter.around("write", lambda: self.inner.write(updates))

    def api_usage(self) -> ApiUsage | None:
        return self.inner.api_usage()

    def refresh_api_usage(self) -> ApiUsage | None:
        return self.meter.around("usage", self.inner.refresh_api_usage)

    def reset(self) -> None:
        self.records_written = self.fields_written = 0
        self.polled = []


class MeteredIntercom:
    """``cycle.CompanySystem``: the real ``IntercomSystem``, every call attributed by step."""

    def __init__(self, inner: IntercomSystem, meter: StepMeter) -> None:
        self.inner, self.meter = inner, meter
        self.records_written = 0
        self.fields_written = 0
        #: webhook notifications kept in the ledger's inbox for the cycle (see Bench.cycle)
        self.drained = 0

    def lookup(self, keys: Sequence[str]) -> Sequence[CompanyChange]:
        return self.meter.around("lookup", lambda: self.inner.lookup(keys))

    def read(self, ids: Sequence[str]) -> Sequence[CompanyChange | CompanyRemoval]:
        return self.meter.around("read-before-write", lambda: self.inner.read(ids))

    def write(self, updates: Updates) -> Sequence[RecordResult]:
        self.records_written += len(updates)
        self.fields_written += sum(len(values) for _, values in updates)
        return self.meter.around("write", lambda: self.inner.write(updates))

    def reset(self) -> None:
        self.records_written = self.fields_written = self.drained = 0


# -- the world -------------------------------------------------------------------------------------


class Clock:
    """The Salesforce simulator's (and adapter's) clock: stands still until advanced."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Receiver:
    """Where the webhook endpoint holds verified, parsed deliveries until a cycle's turn."""

    held: list[Notification] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def keep(self, app: LedgerApp) -> int:
        """Keep the held notifications in ``app``'s inbox (one transaction); how many."""
        held, self.held = self.held, []
        recorded = app.receive((n.id, n.fact) for n in held if n.fact is not None)
        new = sum(isinstance(e, NotificationReceived) for e in recorded.events)
        self.outcomes["accepted"] += new
        if len(held) > new:
            self.outcomes["duplicate"] += len(held) - new
        return new


def webhook_receiver(receiver: Receiver) -> FastAPI:
    """A bare endpoint verifying and parsing each signed delivery (as the service's intake)."""
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> PlainTextResponse:
        body, signature = await request.body(), request.headers.get("X-Hub-Signature")
        if not verify_signature(body, signature, SECRET):
            receiver.outcomes["rejected"] += 1
            return PlainTextResponse("rejected", status_code=400)
        receiver.held.append(parse_notification(body))
        return PlainTextResponse("held")

    return app


def seed(sf: SalesforceState, ic: IntercomState, n: int) -> dict[str, tuple[str, str]]:
    """N accounts and N companies sharing keys and mapped values; ids by key."""
    pairs: dict[str, tuple[str, str]] = {}
    for i in range(n):
        key, name, industry, size = f"K-{i:06d}", f"Company {i}", INDUSTRIES[i % 5], 10 + i % 90
        website = f"https://c{i}.example"
        sid = sf.create_account(
            {"Name": name, "AccountNumber": key, "Plan__c": "Pro", "Industry": industry,
             "NumberOfEmployees": size, "Website": website}
        )  # fmt: skip
        iid = ic.create_company(
            key, name=name, industry=industry, size=size, website=website,
            custom_attributes={"plan": "Pro"},
        )  # fmt: skip
        pairs[key] = (sid, iid)
    return pairs


@dataclass
class Phase:
    name: str
    report: CycleReport
    seconds: float
    sf: dict[str, Counter[str]]
    ic: dict[str, Counter[str]]
    sf_records_written: int = 0
    sf_fields_written: int = 0
    ic_records_written: int = 0
    ic_fields_written: int = 0
    polled_changes: int = 0
    drained: int = 0

    def sf_calls(self, step: str | None = None, kinds: Sequence[str] | None = None) -> int:
        return _count(self.sf, step, kinds)

    def ic_calls(self, step: str | None = None, kinds: Sequence[str] | None = None) -> int:
        return _count(self.ic, step, kinds)


def _count(
    by_step: Mapping[str, Counter[str]], step: str | None, kinds: Sequence[str] | None
) -> int:
    steps = [by_step.get(step, Counter())] if step else list(by_step.values())
    return sum(
        n
        for counts in steps
        for kind, n in counts.items()
        if kind not in ("faults", "limit_exceeded") and (kinds is None or kind in kinds)
    )


@dataclass
class Bench:
    app: LedgerApp
    clock: Clock
    sf_state: SalesforceState
    ic_state: IntercomState
    salesforce: MeteredSalesforce
    intercom: MeteredIntercom
    receiver: Receiver
    pairs: dict[str, tuple[str, str]]
    phases: dict[str, Phase] = field(default_factory=dict)

    def flush(self) -> None:
        if not self.ic_state.flush_webhooks(600.0):
            raise SystemExit("webhooks were not delivered within 600 s")

    def cycle(self, name: str) -> Phase:
        """Reset every counter, run one cycle (timed), and keep what it spent."""
        self.flush()
        for reset in (self.sf_state.reset_counters, self.ic_state.reset_counters,
                      self.salesforce.meter.reset, self.intercom.meter.reset,
                      self.salesforce.reset, self.intercom.reset):  # fmt: skip
            reset()
        self.intercom.drained = self.receiver.keep(self.app)  # the intake's part, untimed
        started = time.perf_counter()
        report = run_cycle(self.app, self.salesforce, self.intercom)
        seconds = time.perf_counter() - started
        # The step meters saw every call the cycle made: check against the simulators' totals.
        sf_total, ic_total = self.sf_state.counters["total"], sum(self.ic_state.counters.values())
        if self.salesforce.meter.calls() != sf_total or self.intercom.meter.calls() != ic_total:
            raise SystemExit(f"{name}: calls outside the ports ({sf_total}, {ic_total})")
        polled = sum(isinstance(f, AccountChange) for f in self.salesforce.polled)
        phase = Phase(
            name, report, seconds,
            dict(self.salesforce.meter.by_step), dict(self.intercom.meter.by_step),
            self.salesforce.records_written, self.salesforce.fields_written,
            self.intercom.records_written, self.intercom.fields_written,
            polled, self.intercom.drained,
        )  # fmt: skip
        self.phases[name] = phase
        return phase


def expect(what: str, got: int, want: int) -> None:
    """The phase did what it says, or the figures would mean something else."""
    if got != want:
        raise SystemExit(f"setup check failed: {what} is {got}, expected {want}")


def run(n: int, k: int) -> Bench:
    clock = Clock()
    sf_state = SalesforceState(now=clock)
    ic_state = IntercomState(seed=7)
    ic_state.define_attribute("plan", "string")
    pairs = seed(sf_state, ic_state, n)  # before serving: no webhooks for the seed
    receiver = Receiver()
    with ExitStack() as stack:
        hook = stack.enter_context(serving(webhook_receiver(receiver)))
        sf_server = stack.enter_context(serving(create_salesforce_app(sf_state)))
        ic_app = create_intercom_app(
            ic_state,
            webhook_url=f"{hook.url}/hook",
            client_secret=SECRET,
            rate_limit_per_10s=1_000_000_000,
            seed=13,
        )
        ic_server = stack.enter_context(serving(ic_app))
        accounts = SalesforceAccounts(
            sf_server.url, "sim-token", fields=SF_FIELDS, identifier_field="AccountNumber",
            now=clock, sleep=lambda _: None,
        )  # fmt: skip
        stack.callback(accounts.close)
        companies = IntercomCompanies(ic_server.url, "sim-token", timeout=30)
        stack.callback(companies.close)
        intercom = IntercomSystem(companies)
        app = LedgerApp(env=ledger_env("memory://"))
        app.apply_config(demo_config(), FieldCatalog.of(accounts.describe(), companies.catalog()))
        bench = Bench(
            app, clock, sf_state, ic_state,
            MeteredSalesforce(SalesforceSystem(accounts), StepMeter(lambda: sf_state.counters)),
            MeteredIntercom(intercom, StepMeter(lambda: ic_state.counters)),
            receiver,
            pairs,
        )  # fmt: skip

        # A. first sync of N pairs.
        clock.advance(3600)
        a = bench.cycle("first")
        expect("first poll: accounts polled", a.polled_changes, n)
        expect("first sync: pairs mapped", a.report.mappings_made, n)
        expect("first sync: writes planned", a.report.writes_planned, 0)

        # B. Salesforce users edit two Salesforce → Intercom fields on all N accounts.
        clock.advance(3600)
        for i, (sid, _) in enumerate(pairs.values()):
            sf_state.update_account(sid, {"Name": f"Renamed {i}", "Plan__c": "Enterprise"})
        b = bench.cycle("s2i")
        expect("S→I: accounts polled", b.polled_changes, n)
        expect("S→I: Intercom writes applied", b.report.applied_by_system["intercom"], 2 * n)
        expect("S→I: Intercom records written", b.ic_records_written, n)

        # C. The next cycle, 60 s later: echo webhooks, and the poll's overlap.
        clock.advance(60)
        c = bench.cycle("after_s2i")
        expect("echo webhooks drained", c.drained, n)

        # D. Intercom users edit two Intercom → Salesforce attributes on all N companies.
        clock.advance(3600)
        for i, (_, iid) in enumerate(pairs.values()):
            ic_state.update_company(iid, industry=INDUSTRIES[(i + 1) % 5], size=1000 + i)
        d = bench.cycle("i2s")
        expect("I→S: webhooks drained", d.drained, n)
        expect("I→S: Salesforce writes applied", d.report.applied_by_system["salesforce"], 2 * n)
        expect("I→S: Salesforce records written", d.sf_records_written, n)

        # E. The next cycle, 60 s later, polls back D's writes.
        clock.advance(60)
        e = bench.cycle("after_i2s")
        expect("I→S echo: accounts polled", e.polled_changes, n)

        # F. K companies with keys Salesforce has never shown arrive by webhook.
        clock.advance(3600)
        for j in range(k):
            ic_state.create_company(f"U-{j:06d}", name=f"Unknown {j}")
        f = bench.cycle("lookup")
        expect("lookup: webhooks drained", f.drained, k)
        expect("lookup: keys asked", f.report.lookups, 1)
    if receiver.outcomes.keys() - {"accepted"}:
        raise SystemExit(f"unexpected webhook outcomes: {dict(receiver.outcomes)}")
    return bench


# -- output ----------------------------------------------------------------------------------------

POLL_KINDS = ("query", "query_more", "deleted")


@dataclass
class Row:
    measurement: str
    records: int
    calls: int
    naive: int | None  # calls per 1,000 records of the naive approach
    how: str


def per_1000(calls: int, records: int) -> str:
    return f"{1000 * calls / records:,.1f}" if records else "–"


def kinds(by_step: Mapping[str, Counter[str]], step: str | None = None) -> str:
    counts: Counter[str] = Counter()
    for name, c in by_step.items():
        if step is None or name == step:
            counts.update(c)
    return ", ".join(f"{kind} {n:,}" for kind, n in sorted(counts.items())) or "none"


def rows(bench: Bench, n: int, k: int) -> list[Row]:
    p = bench.phases
    a, b, c, d, e, f = (p[x] for x in ("first", "s2i", "after_s2i", "i2s", "after_i2s", "lookup"))
    out = [
        Row("Poll: full first poll (watermark None), SF calls", a.polled_changes,
            a.sf_calls("poll"), 1000,
            f"phase A, `changes_since(None)` of a cycle over {n:,} accounts: "
            f"{kinds(a.sf, 'poll')}; naive = one GET per account"),
        Row("Poll: N accounts changed since the watermark, SF calls", b.polled_changes,
            b.sf_calls("poll"), 1000,
            f"phase B, the cycle's `changes_since(watermark)`, one hour after the last poll, "
            f"{n:,} accounts edited: {kinds(b.sf, 'poll')}; naive = getUpdated + one GET each"),
        Row("Poll: next poll 60 s later, nothing new (300 s overlap re-read), SF calls",
            c.polled_changes, c.sf_calls("poll"), None,
            f"phase C, the cycle after B: {kinds(c.sf, 'poll')}; records = accounts re-read "
            f"(already recorded, so ignored by the ledger)"),
        Row("Poll: quiet org, 1 h after the last change (watermark not advanced), SF calls",
            d.polled_changes, d.sf_calls("poll"), None,
            f"phase D's poll (C polled last, 1 h before; no account changed since B): "
            f"{kinds(d.sf, 'poll')}; records = accounts of B re-read, because the ledger's "
            "watermark is the newest SystemModstamp polled, minus the 300 s overlap"),
        Row("I→S write requests only, per 1,000 attribute writes", d.sf_fields_written,
            d.sf_calls("write"), 1000,
            f"phase D, {d.sf_fields_written:,} field writes in {d.sf_records_written:,} records: "
            f"{kinds(d.sf, 'write')}; naive = one PATCH per field"),
        Row("I→S write requests only, per 1,000 records", d.sf_records_written,
            d.sf_calls("write"), 1000,
            f"phase D, sObject Collections of {COLLECTION_SIZE} records; "
            f"naive = one PATCH sobjects/Account/{{id}} per record"),
        Row("I→S read-before-write + write requests, per 1,000 records", d.sf_records_written,
            d.sf_calls("read-before-write") + d.sf_calls("write"), 2000,
            f"phase D: read-before-write {kinds(d.sf, 'read-before-write')} (SOQL `Id IN`, "
            f"200 ids a query) + write {kinds(d.sf, 'write')}; "
            "naive = one GET + one PATCH per record"),
        Row("I→S all SF calls in the cycle, per 1,000 records", d.sf_records_written,
            d.sf_calls(), 2000,
            f"phase D: poll {d.sf_calls('poll'):,} (re-reading {d.polled_changes:,} accounts) "
            f"+ read-before-write {d.sf_calls('read-before-write'):,} + write "
            f"{d.sf_calls('write'):,} ({kinds(d.sf)}); naive = one GET + one PATCH per record"),
        Row("I→S echo: next poll reads our own writes back, SF calls", e.polled_changes,
            e.sf_calls("poll"), None,
            f"phase E, the cycle 60 s after D: {kinds(e.sf, 'poll')}; "
            f"echoes recognised: {e.report.echoes:,}"),
        Row("S→I all SF calls in the cycle, per 1,000 Intercom records written",
            b.ic_records_written, b.sf_calls(), None,
            f"phase B: {kinds(b.sf)} (by step: "
            + ", ".join(f"{s} {b.sf_calls(s):,}" for s in sorted(b.sf)) + ")"),
        Row("S→I Intercom write requests only, per 1,000 records", b.ic_records_written,
            b.ic_calls("write"), 1000,
            f"phase B, {b.ic_fields_written:,} attribute writes in {b.ic_records_written:,} "
            f"companies: {kinds(b.ic, 'write')}; Intercom has no batch update"),
        Row("S→I all Intercom calls in the cycle, per 1,000 records", b.ic_records_written,
            b.ic_calls(), 2000,
            f"phase B: read-before-write {b.ic_calls('read-before-write'):,} + write "
            f"{b.ic_calls('write'):,} + lookup {b.ic_calls('lookup'):,}; "
            f"naive = one GET + one POST per company"),
        Row("First sync: Intercom lookups of N new keys, Intercom calls", n,
            a.ic_calls("lookup"), 1000,
            f"phase A, `lookup` of the {n:,} keys the poll brought: {kinds(a.ic, 'lookup')}"),
        Row(f"Lookup of K = {k:,} unknown keys, SF calls", k, f.sf_calls("lookup"), 1000,
            f"phase F, {k:,} new companies by webhook, keys on no account: "
            f"{kinds(f.sf, 'lookup')} (SOQL `IN` lists cut at 15,000 URL-encoded characters; "
            f"the cycle's poll, not counted here, re-read {f.polled_changes:,} accounts); "
            "naive = one query per key"),
    ]  # fmt: skip
    return out


def render(bench: Bench, n: int, k: int, total: float) -> str:
    lines = [
        f"Salesforce API economy: N = {n:,} pairs, K = {k:,} unknown keys",
        "",
        "| measurement | records | calls | calls per 1,000 | naive per 1,000 |",
        "|---|---:|---:|---:|---:|",
    ]
    table = rows(bench, n, k)
    for r in table:
        naive = f"{r.naive:,}" if r.naive is not None else "–"
        lines.append(
            f"| {r.measurement} | {r.records:,} | {r.calls:,} | {per_1000(r.calls, r.records)} "
            f"| {naive} |"
        )
    lines += ["", "How each row was taken:", ""]
    lines += [f"- **{r.measurement}**: {r.how}." for r in table]
    lines += [
        "",
        "| phase | cycle wall time s | Salesforce calls by step | Intercom calls by step |",
    ]
    lines += ["|---|---:|---|---|"]
    for name, phase in bench.phases.items():
        sf = "; ".join(f"{s}: {kinds(phase.sf, s)}" for s in sorted(phase.sf) if phase.sf[s])
        ic = "; ".join(f"{s}: {kinds(phase.ic, s)}" for s in sorted(phase.ic) if phase.ic[s])
        lines.append(f"| {name} | {phase.seconds:.2f} | {sf or 'none'} | {ic or 'none'} |")
    b = bench.phases["s2i"]
    lines += [
        "",
        f"At Intercom's default {INTERCOM_DEFAULT_RATE:,} calls per 10 s, phase B's "
        f"{b.ic_calls():,} Intercom calls need at least "
        f"{b.ic_calls() / INTERCOM_DEFAULT_RATE * 10:.0f} s (the benchmark raises the "
        "simulator's limit so the wall times above do not include that wait).",
        f"Total runtime: {total:.1f} s (setup, webhook delivery and all phases).",
    ]
    return "\n".join(lines)


def api_section(n: int, k: int) -> Section:
    """Part 4 of ``scripts/bench``: the table above as a report section, with the targets."""
    started = time.perf_counter()
    bench = run(n, k)
    table = rows(bench, n, k)
    section = Section(
        title="4. API economy: Salesforce calls per 1,000 synced changes",
        method=f"""
`scripts/bench_api.py` (also runnable alone): both simulators in-process over real HTTP, the
real adapters (simple-salesforce, httpx) behind the sync's ports, one real `run_cycle` per phase
on a `LedgerApp` (in-memory store: call counts do not depend on the database) with the demo
configuration; N = {n:,} matched pairs, K = {k:,} unknown keys. Every figure is read from the
simulators' own call counters, reset before each measured cycle, and attributed to the port
call that made it (the script checks that the attribution covers every counted call and that
each phase did what it says). Phases: A first sync, B Salesforce users edit two S→I fields on
all N accounts, C the next cycle (echo webhooks), D Intercom users edit two I→S attributes on
all N companies, E the next cycle (echo poll), F K new companies with unknown keys. Call counts
are deterministic, so one run is enough.
""",
        header=["measurement", "records", "calls", "calls per 1,000", "naive per 1,000"],
    )
    for r in table:
        naive = f"{r.naive:,}" if r.naive is not None else "–"
        section.rows.append(
            [r.measurement, f"{r.records:,}", f"{r.calls:,}", per_1000(r.calls, r.records), naive]
        )
    section.notes += [f"**{r.measurement}**: {r.how}." for r in table]
    d, b = bench.phases["i2s"], bench.phases["s2i"]
    writes = 1000 * d.sf_calls("write") / d.sf_records_written
    with_reads = 1000 * (d.sf_calls("write") + d.sf_calls("read-before-write"))
    with_reads_per_1000 = with_reads / d.sf_records_written
    polled = b.polled_changes
    queries = b.sf_calls("poll", ("query", "query_more"))
    per_2000 = 2000 * queries / polled
    section.targets += [
        Target("SF write requests per 1,000 record writes", "≤ 10", f"{writes:.1f}",
               writes <= 10),
        Target("… counting read-before-write too", "≤ 10", f"{with_reads_per_1000:.1f}",
               with_reads_per_1000 <= 10),
        Target("SF query calls per 2,000 polled records", "≤ 1 (a poll needs at least 1)",
               f"{per_2000:.2f} ({queries} calls for {polled:,} records)",
               queries <= max(1, -(-polled // 2000))),
    ]  # fmt: skip
    section.seconds = time.perf_counter() - started
    return section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 (about 10 s)")
    parser.add_argument("--accounts", type=int, help="N matched pairs (default 10,000)")
    parser.add_argument("--lookup-keys", type=int, default=1800, help="K (default 1,800)")
    args = parser.parse_args(argv)
    n = args.accounts or (1000 if args.quick else 10_000)
    if n < 1 or args.lookup_keys < 1:
        parser.error("--accounts and --lookup-keys must be positive")
    started = time.perf_counter()
    bench = run(n, args.lookup_keys)
    print(render(bench, n, args.lookup_keys, time.perf_counter() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
