"""Part 2 of ``scripts/bench``: signed Intercom webhooks per second into ``syncledger serve``.

A real ``syncledger serve`` process (its sync worker running, both simulators as processes)
receives ``company.updated`` notifications from several client threads, each with its own
keep-alive HTTP/1.1 connection (``http.client``, lighter than httpx, so the client takes less
of the two shared cores), in a closed loop for a fixed time. Every body is signed the way
Intercom signs (``X-Hub-Signature: sha1=<HMAC-SHA1>``). Each response time is taken around
one request and its response. Afterwards the ledger is read: every ``200 accepted`` must be one
``NotificationReceived`` event, or the run fails.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench_common import (
    BenchError,
    Database,
    Sample,
    Section,
    Target,
    ms,
    percentile,
    rate,
    wait_for,
)
from bench_stack import SECRET, Stack, running_stack

from ledger import events as ev

Progress = Callable[[str], None]


def notification(thread: int, seq: int, now: int) -> bytes:
    """A ``company.updated`` notification_event about a company whose key is new."""
    key = f"W-{thread:02d}-{seq:07d}"
    item = {
        "type": "company", "id": hashlib.sha1(key.encode()).hexdigest()[:24], "app_id": "bench",
        "name": f"Webhook company {seq}", "company_id": key, "created_at": now, "updated_at": now,
        "monthly_spend": 0, "session_count": 0, "user_count": 0, "size": seq % 1000,
        "website": None, "industry": "Retail", "plan": {}, "custom_attributes": {},
        "tags": {"type": "tag.list", "tags": []},
        "segments": {"type": "segment.list", "segments": []},
    }  # fmt: skip
    envelope = {
        "type": "notification_event", "app_id": "bench", "id": f"notif_{thread}_{seq}_{now}",
        "topic": "company.updated", "created_at": now, "delivery_status": "pending",
        "delivery_attempts": 1, "delivered_at": 0, "first_sent_at": now, "self": None,
        "links": {}, "data": {"type": "notification_event_data", "item": item},
    }  # fmt: skip
    return json.dumps(envelope).encode()


@dataclass
class LoadResult:
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def accepted(self) -> int:
        return self.statuses["200 accepted"]


def drive(port: int, clients: int, seconds: float, warmup: float) -> tuple[LoadResult, int]:
    """Closed-loop load from ``clients`` threads; returns the measured window's result and
    how many webhooks were accepted in all (warm-up included)."""
    lock = threading.Lock()
    measured = LoadResult()
    total_accepted = [0]
    start = time.perf_counter()
    window = (start + warmup, start + warmup + seconds)
    errors: list[str] = []

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies: list[float] = []
        statuses: Counter[str] = Counter()
        accepted = seq = 0
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= window[1]:
                    break
                body = notification(index, seq, int(time.time()))
                seq += 1
                signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
                conn.request(
                    "POST", "/webhooks/intercom", body,
                    {"Content-Type": "application/json", "X-Hub-Signature": signature},
                )  # fmt: skip
                response = conn.getresponse()
                answer = response.read()
                t1 = time.perf_counter()
                status = f"{response.status}"
                if response.status == 200:
                    status += " " + str(json.loads(answer).get("status"))
                if status == "200 accepted":
                    accepted += 1
                if t0 >= window[0]:
                    latencies.append(t1 - t0)
                    statuses[status] += 1
        except Exception as exc:
            errors.append(f"client {index}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
        with lock:
            measured.latencies += latencies
            measured.statuses.update(statuses)
            total_accepted[0] += accepted

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError(f"webhook client failed: {errors[0]}")
    measured.seconds = seconds
    return measured, total_accepted[0]


@dataclass
class IntakeRow:
    db: Database
    throughput: Sample = field(default_factory=Sample)
    p50: Sample = field(default_factory=Sample)
    p99: Sample = field(default_factory=Sample)
    worst: Sample = field(default_factory=Sample)
    sent: int = 0
    recorded: int = 0
    other: Counter[str] = field(default_factory=Counter)


def count_received(stack: Stack) -> int:
    """``NotificationReceived`` events in the service's ledger, read from the store."""
    app = stack.ledger()
    try:
        return sum(isinstance(e, ev.NotificationReceived) for _, e in app.read_events())
    finally:
        app.close()


def intake_section(
    dbs: list[Database],
    workdir: Path,
    *,
    clients: int,
    seconds: float,
    warmup: float,
    repeats: int,
    progress: Progress,
) -> Section:
    started = time.perf_counter()
    rows = [IntakeRow(db) for db in dbs]
    for rep in range(repeats):
        for row in rows:
            with (
                row.db.fresh() as url,
                running_stack(
                    workdir / f"intake-{row.db.key}-{rep}", url, poll_interval=300
                ) as stack,
            ):
                wait_for_first_cycle(stack.health)
                port = int(stack.service_url.rsplit(":", 1)[1])
                result, accepted = drive(port, clients, seconds, warmup)
                stack.procs.check_alive()
                kept = stack.health()["webhooks"]["kept"]
                recorded = count_received(stack)
            if not (accepted == kept == recorded):
                raise BenchError(
                    f"webhooks lost on {row.db.label}: {accepted} accepted, the service kept "
                    f"{kept}, the ledger holds {recorded} NotificationReceived"
                )
            row.sent += accepted
            row.recorded += recorded
            row.other.update({k: v for k, v in result.statuses.items() if k != "200 accepted"})
            per_s = len(result.latencies) / result.seconds
            row.throughput.add(per_s)
            row.p50.add(percentile(result.latencies, 50))
            row.p99.add(percentile(result.latencies, 99))
            row.worst.add(max(result.latencies, default=float("nan")))
            progress(
                f"intake {row.db.label} run {rep + 1}/{repeats}: {per_s:,.0f}/s, "
                f"p50 {percentile(result.latencies, 50) * 1000:.1f} ms, "
                f"p99 {percentile(result.latencies, 99) * 1000:.1f} ms"
            )
    section = Section(
        title="2. Webhook intake: signed Intercom webhooks into `syncledger serve`",
        method=f"""
A real `syncledger serve` process (uvicorn, one worker process; its sync worker running, poll
interval 300 s; both simulators as processes) on a fresh ledger receives `company.updated`
notifications over HTTP on loopback from {clients} client threads, each with its own keep-alive
connection (`http.client`), in a closed loop: {warmup:g} s of warm-up, then {seconds:g} s
measured. Each notification has a new id and a new company key, signed with HMAC-SHA1 as
Intercom signs. A `200` is answered only after the notification is committed to the ledger's
inbox (group commit by one writer thread). Meanwhile the sync worker takes the inbox and asks
the Salesforce simulator about the new keys (batched lookups), as it would in production, so
intake shares the process with real sync work. Response time: one request to its full
response, on the client. After each run the ledger is read: every `200 accepted` must be one
`NotificationReceived` event and one of the service's `kept` count, or the benchmark fails.
{repeats} run(s) per database, each on a fresh stack; median and min–max spread.
""",
        header=[
            "database",
            "webhooks/s",
            "spread",
            "p50 ms",
            "spread",
            "p99 ms",
            "spread",
            "max ms",
            "accepted = recorded",
            "other answers",
        ],
    )
    for row in rows:
        section.rows.append(
            [
                row.db.label,
                row.throughput.show(rate),
                row.throughput.spread(rate),
                row.p50.show(ms),
                row.p50.spread(ms),
                row.p99.show(ms),
                row.p99.spread(ms),
                row.worst.show(ms),
                f"{row.sent:,} = {row.recorded:,}",
                ", ".join(f"{k}: {v}" for k, v in row.other.items()) or "none",
            ]
        )
        if row.db.key == "sqlite":
            section.targets.append(
                Target(
                    "webhook intake ≥ 1,000/s (SQLite)",
                    "≥ 1,000/s",
                    f"{row.throughput.show(rate)}/s",
                    row.throughput.median >= 1000,
                )
            )
            section.targets.append(
                Target(
                    "webhook p99 ≤ 50 ms (SQLite)",
                    "≤ 50 ms",
                    f"{row.p99.show(ms)} ms",
                    row.p99.median <= 0.050,
                )
            )
        section.targets.append(
            Target(
                f"no webhook lost ({row.db.label})",
                "accepted = recorded",
                f"{row.sent:,} = {row.recorded:,}",
                row.sent == row.recorded,
            )
        )
    section.seconds = time.perf_counter() - started
    return section


def wait_for_first_cycle(health: Callable[[], dict[str, object]]) -> None:
    """Wait until the worker has run its first (polling) cycle, so start-up is not measured."""

    def done() -> bool:
        worker = health().get("worker")
        return isinstance(worker, dict) and int(worker.get("polls", 0)) >= 1

    wait_for(done, "the service's first sync cycle")
