"""``scripts/bench --quick`` runs every part end to end and writes its report.

A smoke test: small sizes, one run each. Figures are never asserted (a slow machine must not
fail the build); a failed measurement (a lost webhook, a process that died) exits non-zero.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_bench_quick_runs_every_part_and_writes_markdown(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    env = dict(os.environ)
    env.setdefault(
        "SYNCLEDGER_BENCH_POSTGRES_URL",
        env.get("SYNCLEDGER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test"),
    )
    done = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--markdown", str(report)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=420,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text(encoding="utf-8")
    for title in (
        "## Targets",
        "## Machine",
        "## 1. Ingest",
        "## 2. Webhook intake",
        "## 3. End-to-end latency",
        "## 4. API economy",
        "## 5. Projection rebuild",
        "## 6. Scaling",
        "## 7. Faults",
    ):
        assert title in text, title
    # nothing accepted was lost: the run checked it, and says so next to the target
    assert "| no webhook lost (SQLite) | accepted = recorded |" in text
    assert "Traceback" not in done.stderr
