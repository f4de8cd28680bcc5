#!/usr/bin/env python3
"""Profile ``syncledger serve`` under the webhook-intake load of ``scripts/bench`` (py-spy).

Usage::

    .venv/bin/python scripts/bench_profile.py [--database sqlite|postgres] [--seconds S]
                                               [--clients C] [--raw FILE]

Starts the stack of ``bench_intake`` (both simulators and ``serve`` as processes), drives
signed webhooks from ``C`` client threads for ``S`` seconds while ``py-spy record`` samples the
``serve`` process (``--nonblocking``, so the process is not paused), then prints where the busy
samples went, grouped by what the service was doing (idle waits are left out). The raw
collapsed stacks are kept in ``--raw`` for a flame graph. py-spy is a dev dependency
(``pip install -e .[dev]``); it needs ptrace permission on the process (root, or
``kernel.yama.ptrace_scope = 0``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench_common import BenchError, connect_postgres, databases, default_postgres_url, percentile
from bench_intake import drive, wait_for_first_cycle
from bench_stack import running_stack

IDLE = ("Condition.wait", "EpollSelector.select", "Queue.get", "Event.wait", "sleep")


def category(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "WebhookIntake._run" in joined:
        commit = "SQLiteConnection.commit" in joined or "commit" in frames[-1]
        return "intake writer thread: " + ("commit" if commit else "deciding, encoding, insert")
    if "SyncWorker._run" in joined:
        return "sync worker thread (cycles: take inbox, lookups, decide, save)"
    if "RequestResponseCycle.run_asgi" in joined:
        return "event loop: ASGI app (FastAPI, middleware, webhook handler)"
    if "run_forever" in joined or "Handle._run" in joined:
        return "event loop: HTTP transport, parsing, scheduling"
    if "WorkerThread.run" in joined:
        return "anyio thread pool"
    return f"other: {frames[-1] if frames else '?'}"


def summarise(raw: Path) -> list[tuple[str, float]]:
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        if not frames or frames[-1] in IDLE:
            continue
        counts[category(frames)] += int(n)
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--postgres-url", default=default_postgres_url())
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("error: py-spy is not installed: pip install -e '.[dev]'", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="syncledger-profile-"))
    pg = None
    if args.database == "postgres":
        pg, _, _, note = connect_postgres(args.postgres_url)
        if pg is None:
            print(f"error: {note}", file=sys.stderr)
            return 2
    raw = args.raw or tmp / "stacks.txt"
    try:
        db = next(d for d in databases(tmp, pg) if d.key == args.database)
        with db.fresh() as url, running_stack(tmp / "stack", url) as stack:
            wait_for_first_cycle(stack.health)
            pid = next(p.pid for name, p in stack.procs.started if name == "serve")
            sampler = subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", f"{args.seconds:.0f}",
                 "--format", "raw", "--nonblocking", "-o", str(raw)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            port = int(stack.service_url.rsplit(":", 1)[1])
            result, _ = drive(port, args.clients, args.seconds, 0.5)
            _, err = sampler.communicate(timeout=args.seconds + 30)
            if sampler.returncode != 0 or not raw.exists():
                raise BenchError(f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}")
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if pg is not None:
            pg.drop_leftovers()
    lat = result.latencies
    print(
        f"{args.database}: {len(lat) / args.seconds:,.0f} webhooks/s under py-spy, "
        f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms"
    )
    print("\n| where the serve process was busy | share of busy samples |\n|---|---:|")
    for name, share in summarise(raw):
        if share >= 0.005:
            print(f"| {name} | {share:.0%} |")
    print(f"\ncollapsed stacks: {raw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
