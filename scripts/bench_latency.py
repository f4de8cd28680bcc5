"""Part 3 of ``scripts/bench``: Intercom change → Salesforce write applied, at a steady load.

Both simulators and ``syncledger serve`` run as processes (``bench_stack``), the Intercom
simulator delivering signed webhooks to the service. ``M`` account/company pairs are seeded
with equal values, the service maps them on its first poll, then a sender changes one company's
``size`` (mapped Intercom → Salesforce ``NumberOfEmployees``) ``R`` times a second through the
Intercom simulator's REST API (``POST /companies``), each change with a value never used
before. The latency of a change is the ``WriteApplied`` event's timestamp (the service's clock,
taken when the Salesforce write has returned) minus the wall-clock time just before the
sender's call; values tie the two together. At the end every account must hold the last value
sent for it, read back from the Salesforce simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench_common import BenchError, Database, Sample, Section, Target, ms, percentile, wait_for
from bench_stack import SF_API, Stack, pairs_data, running_stack

from ledger import events as ev

Progress = Callable[[str], None]
FIELD = "NumberOfEmployees"
FIRST_VALUE = 100_000


@dataclass
class LatencyRun:
    sent: dict[int, float] = field(default_factory=dict)  # value -> wall time before the call
    key_of: dict[int, str] = field(default_factory=dict)
    applied: dict[int, float] = field(default_factory=dict)  # value -> WriteApplied time
    received: dict[int, float] = field(default_factory=dict)  # value -> NotificationReceived
    send_seconds: float = 0.0
    late_sends: int = 0

    def latencies(self) -> list[float]:
        return [self.applied[v] - t for v, t in self.sent.items() if v in self.applied]

    def intake(self) -> list[float]:
        return [self.received[v] - t for v, t in self.sent.items() if v in self.received]


def mapped(stack: Stack, m: int) -> bool:
    app = stack.ledger()
    try:
        return len(app.mappings()) >= m
    finally:
        app.close()


def send_changes(stack: Stack, keys: list[str], per_second: float, seconds: float) -> LatencyRun:
    """Change one company's size ``per_second`` times a second (open loop) for ``seconds``."""
    run = LatencyRun()
    count = int(per_second * seconds)
    start = time.perf_counter()
    for seq in range(count):
        due = start + seq / per_second
        now = time.perf_counter()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.1:
            run.late_sends += 1
        value, key = FIRST_VALUE + seq, keys[seq % len(keys)]
        run.sent[value], run.key_of[value] = time.time(), key
        r = stack.ic.post("/companies", json={"company_id": key, "size": value})
        if r.status_code != 200:
            raise BenchError(f"the Intercom simulator refused a change: {r.status_code} {r.text}")
    # the rate achieved: changes over the time from the first call to the last one's due time
    run.send_seconds = max(time.perf_counter() - start, count / per_second)
    return run


def read_outcomes(stack: Stack, run: LatencyRun) -> None:
    app = stack.ledger()
    try:
        for _, e in app.read_events():
            if isinstance(e, ev.WriteApplied) and e.write.get("field") == FIELD:
                value = e.write.get("value")
                if isinstance(value, int) and value in run.sent:
                    run.applied.setdefault(value, e.timestamp.timestamp())
            elif isinstance(e, ev.NotificationReceived):
                size = _size_of(e.fact)
                if size in run.sent:
                    run.received.setdefault(size, e.timestamp.timestamp())
    finally:
        app.close()


def _size_of(fact: dict[str, Any]) -> int | None:
    for holder in (fact, fact.get("attributes") or {}, fact.get("values") or {}):
        if isinstance(holder, dict) and isinstance(holder.get("size"), int):
            return int(holder["size"])
    return None


def final_values(stack: Stack) -> dict[str, Any]:
    """``AccountNumber -> NumberOfEmployees`` read from the Salesforce simulator."""
    out: dict[str, Any] = {}
    r = stack.sf.get(f"{SF_API}/query", params={"q": f"SELECT AccountNumber, {FIELD} FROM Account"})
    while True:
        body = r.json()
        out |= {rec["AccountNumber"]: rec[FIELD] for rec in body["records"]}
        if body.get("done", True):
            return out
        r = stack.sf.get(body["nextRecordsUrl"])


@dataclass
class LatencyRow:
    db: Database
    p50: Sample = field(default_factory=Sample)
    p99: Sample = field(default_factory=Sample)
    worst: Sample = field(default_factory=Sample)
    intake_p50: Sample = field(default_factory=Sample)
    achieved: Sample = field(default_factory=Sample)
    changes: int = 0
    applied: int = 0
    late_sends: int = 0


def latency_section(
    dbs: list[Database],
    workdir: Path,
    *,
    pairs: int,
    per_second: float,
    seconds: float,
    poll_interval: float,
    repeats: int,
    progress: Progress,
) -> Section:
    started = time.perf_counter()
    rows = [LatencyRow(db) for db in dbs]
    sf_data, ic_data = pairs_data(pairs)
    keys = [a["AccountNumber"] for a in sf_data["accounts"]]
    for rep in range(repeats):
        for row in rows:
            with row.db.fresh() as url, running_stack(
                workdir / f"latency-{row.db.key}-{rep}", url, sf_data=sf_data, ic_data=ic_data,
                webhooks_to_service=True, poll_interval=poll_interval,
            ) as stack:  # fmt: skip
                wait_for(partial(mapped, stack, pairs), f"{pairs} pairs mapped", timeout=120)
                run = send_changes(stack, keys, per_second, seconds)
                last = {run.key_of[v]: v for v in sorted(run.sent)}

                def settled(s: Stack = stack, want: dict[str, int] = last) -> bool:
                    s.procs.check_alive()
                    got = final_values(s)
                    return all(got.get(k) == v for k, v in want.items())

                wait_for(settled, "the last change of every company in Salesforce", timeout=60)
                read_outcomes(stack, run)
            lat = run.latencies()
            row.changes += len(run.sent)
            row.applied += len(run.applied)
            row.late_sends += run.late_sends
            row.p50.add(percentile(lat, 50))
            row.p99.add(percentile(lat, 99))
            row.worst.add(max(lat, default=float("nan")))
            row.intake_p50.add(percentile(run.intake(), 50))
            row.achieved.add(len(run.sent) / run.send_seconds)
            progress(
                f"latency {row.db.label} run {rep + 1}/{repeats}: {len(run.applied)}/"
                f"{len(run.sent)} applied, p50 {percentile(lat, 50):.3f} s, "
                f"p99 {percentile(lat, 99):.3f} s"
            )
    section = Section(
        title="3. End-to-end latency: Intercom change → Salesforce write applied",
        method=f"""
Both simulators and `syncledger serve` run as separate processes on loopback; the Intercom
simulator delivers signed webhooks to the service, as Intercom would. {pairs} account/company
pairs are seeded with equal values; the service maps them on its first poll. Then a sender
changes one company's `size` (mapped to `{FIELD}`, Intercom → Salesforce) through the Intercom
simulator's REST API (`POST /companies`) at a steady {per_second:g} changes/s for {seconds:g} s
(open loop; companies in turn, so each company changes every {pairs / per_second:g} s), each
change with a value never used before. Latency = the timestamp of the ledger's `WriteApplied`
event for that value (the service's clock, taken right after the Salesforce call returned) −
the wall-clock time just before the sender's call. The path covers the simulator's webhook
delivery, intake and group commit, the worker's wake-up (50 ms gather), the decision,
read-before-write and the sObject Collections write. The service polls Salesforce every
{poll_interval:g} s (default 300 s), so polls — which read our own writes back as echoes — run
between webhook cycles. "webhook in, p50" is the same measure up to the `NotificationReceived`
event (change → kept in the ledger's inbox). At the end every account must hold the last value
sent for it, read back from the Salesforce simulator. {repeats} run(s) per database, each on
a fresh stack.
""",
        header=[
            "database",
            "p50 ms",
            "spread",
            "p99 ms",
            "spread",
            "max ms",
            "webhook in, p50 ms",
            "changes/s sent",
            "applied / sent",
        ],
    )
    for row in rows:
        section.rows.append(
            [
                row.db.label,
                row.p50.show(ms),
                row.p50.spread(ms),
                row.p99.show(ms),
                row.p99.spread(ms),
                row.worst.show(ms),
                row.intake_p50.show(ms),
                row.achieved.show(lambda x: f"{x:.1f}"),
                f"{row.applied:,} / {row.changes:,}",
            ]
        )
        section.targets += [
            Target(
                f"change → applied p50 ≤ 1 s ({row.db.label})",
                "≤ 1 s",
                f"{row.p50.show(ms)} ms",
                row.p50.median <= 1.0,
            ),
            Target(
                f"change → applied p99 ≤ 5 s ({row.db.label})",
                "≤ 5 s",
                f"{row.p99.show(ms)} ms",
                row.p99.median <= 5.0,
            ),
        ]
        if row.late_sends:
            section.notes.append(
                f"{row.db.label}: {row.late_sends} change(s) were sent more than 100 ms after "
                "their due time (the sender fell behind on the shared cores)."
            )
        if row.applied < row.changes:
            section.notes.append(
                f"{row.db.label}: {row.changes - row.applied} change(s) had no `WriteApplied` of "
                "their own: a newer change of the same company superseded them before the write "
                "(the final values were all checked)."
            )
    section.seconds = time.perf_counter() - started
    return section
