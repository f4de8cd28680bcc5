"""``syncledger demo`` as a real process: its simulators and service are real child processes.

Every test checks that no child outlives the demo: the demo names each child's pid as it
starts it, and the test looks for each pid after the demo has gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.demo.story import demo_config, reset_demo_database
from adapters.service.lease import sqlite_process_lock
from adapters.store.database import ledger_env
from ledger.application import LedgerApp

SYNCLEDGER = Path(sys.executable).parent / "syncledger"
SF_API = "/services/data/v62.0"
PID = re.compile(r"\(pid (\d+)\)")


def demo_env(tmp: Path) -> dict[str, str]:
    """Wide lines to parse; the demo's own work directory (logs kept after a failure) in tmp."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}
    return env | {"COLUMNS": "250", "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)}


def pids(output: str) -> set[int]:
    return {int(p) for p in PID.findall(output)}


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live syncledger process (not a zombie, not a reused pid)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"syncledger" in cmdline and "\nState:\tZ" not in status


def assert_all_gone(children: set[int], within: float = 0.0) -> None:
    deadline = time.monotonic() + within
    while (survivors := {p for p in children if alive(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not survivors, f"child processes outlived the demo: {survivors}"


class Demo:
    """``syncledger demo`` in the background; its output is collected line by line."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(SYNCLEDGER), "demo", *args], cwd=cwd, env=demo_env(cwd), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            # Ctrl-C must reach it even when pytest runs as a background job (which ignores it)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.output):
                return found
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} in the demo's output:\n{self.output}")

    def finish(self, timeout: float = 60.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.finish()
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def background(tmp_path: Path) -> Iterator[list[Demo]]:
    demos: list[Demo] = []
    yield demos
    for demo in demos:
        demo.stop()
        assert_all_gone(pids(demo.output), within=20)


def count(output: str, label: str) -> int:
    found = re.search(rf"^\s*{re.escape(label)}\s+(\d+)\s*$", output, re.MULTILINE)
    assert found, f"no {label!r} row in:\n{output}"
    return int(found.group(1))


def test_the_demo_converges_and_prints_a_summary_with_every_part(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [str(SYNCLEDGER), "demo"], cwd=tmp_path, env=demo_env(tmp_path), capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert elapsed < 60, f"the demo took {elapsed:.0f} s"
    assert "Traceback" not in out + result.stderr
    assert len(pids(out)) == 3  # both simulators and the service
    assert_all_gone(pids(out))

    assert count(out, "made") > 200  # mappings
    assert count(out, "ended: identifier field changed") > 0
    assert count(out, "ended: superseded by a more recently updated duplicate") > 0
    assert count(out, "ended: company deleted") == 1
    assert count(out, "ended: key changed") == 1
    applied = re.search(
        r"Salesforce → Intercom\s+(\d+)\s+0\s+Intercom → Salesforce\s+(\d+)\s+0", out
    )
    assert applied and int(applied[1]) > 0 and int(applied[2]) > 0, out
    for rule in ("already_equal", "source_empty", "destination_has_value"):
        assert re.search(rf"^\s*{rule}\s+[1-9]\d*\s", out, re.MULTILINE), rule
    assert "'Space Mining' is not a value of the restricted picklist Industry" in out
    overwrites = re.search(r"Overwrites \(a sample of (\d+) of (\d+)\)", out)
    assert overwrites and int(overwrites[1]) > 0 and int(overwrites[2]) > 0
    assert re.search(r"'[^']+' → '[^']+'", out)  # before → after
    assert re.search(r"Salesforce\s+person account.*\s1\s*$", out, re.MULTILINE)
    assert re.search(r"Intercom\s+company has no company_id.*\s2\s*$", out, re.MULTILINE)
    assert re.search(r"^\s*Intercom\s+[1-9]\d*\s*$", out, re.MULTILINE)  # echoes

    # the default ledger is the demo's own file in the working directory, and it is real
    database = tmp_path / "syncledger-demo.db"
    assert database.exists()
    with LedgerApp(env=ledger_env(f"sqlite:///{database}", create_tables=False)) as ledger:
        assert ledger.config.version == 2
        assert len(ledger.mappings()) == count(out, "in force now")
        assert not ledger.state.pending and not ledger.state.inbox


def test_keep_running_leaves_everything_up_until_ctrl_c(
    tmp_path: Path, background: list[Demo]
) -> None:
    demo = Demo(tmp_path, "--keep-running", "--database-url", f"sqlite:///{tmp_path}/d.db")
    background.append(demo)
    found = demo.wait_for(r"export SYNCLEDGER_POLL_INTERVAL_SECONDS=\S+\n")
    assert demo.process.poll() is None
    env = dict(re.findall(r"export (SYNCLEDGER_\w+)=(\S+)", demo.output))
    assert found and env["SYNCLEDGER_DATABASE_URL"] == f"sqlite:///{tmp_path}/d.db"
    health = re.search(r"(http://127\.0\.0\.1:\d+)/health", demo.output)
    assert health and httpx.get(f"{health[1]}/health").status_code == 200
    assert f"{health[1]}/webhooks/intercom" in demo.output

    headers = {"Authorization": f"Bearer {env['SYNCLEDGER_INTERCOM_TOKEN']}"}
    sf = httpx.Client(base_url=env["SYNCLEDGER_SALESFORCE_INSTANCE_URL"], headers=headers)
    ic = httpx.Client(base_url=env["SYNCLEDGER_INTERCOM_BASE_URL"], headers=headers)
    url = env["SYNCLEDGER_DATABASE_URL"]
    with sf, ic, LedgerApp(env=ledger_env(url, create_tables=False)) as ledger:
        link = ledger.mappings()[0]
        before = sf.get(f"{SF_API}/sobjects/Account/{link.salesforce_id}").json()
        industry = "Banking" if before["Industry"] == "Retail" else "Retail"
        # a user edits the company in Intercom: the webhook carries it to Salesforce
        r = ic.post("/companies", json={"company_id": link.company_id, "industry": industry})
        assert r.status_code == 200, r.text
        # a user edits the account in Salesforce: the next poll carries it to Intercom
        r = sf.patch(f"{SF_API}/sobjects/Account/{link.salesforce_id}", json={"Name": "Renamed"})
        assert r.status_code == 204, r.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            account = sf.get(f"{SF_API}/sobjects/Account/{link.salesforce_id}").json()
            company = ic.get(f"/companies/{link.intercom_id}").json()
            if account["Industry"] == industry and company["name"] == "Renamed":
                break
            time.sleep(0.2)
        assert account["Industry"] == industry and company["name"] == "Renamed"

    children = pids(demo.output)
    assert len(children) == 3 and all(alive(p) for p in children)
    demo.process.send_signal(signal.SIGINT)
    assert demo.finish(timeout=60) == 0, demo.output
    assert "Stopped: no simulator or service left running." in demo.output
    assert_all_gone(children)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize(
    "how", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: str(s.name)
)
def test_stopping_the_demo_midway_stops_its_children(
    tmp_path: Path, background: list[Demo], how: signal.Signals
) -> None:
    demo = Demo(tmp_path)
    background.append(demo)
    demo.wait_for(r"Start the sync service: .*\(pid \d+\)")
    children = pids(demo.output)
    assert len(children) == 3
    demo.process.send_signal(how)
    code = demo.finish(timeout=60)
    if how == signal.SIGKILL:  # no clean-up ran: the kernel tells the children
        assert code == -signal.SIGKILL
    else:
        assert code == 130, demo.output
        assert "interrupted; everything the demo started is stopped" in demo.output
    assert_all_gone(children, within=20)


def test_a_child_that_cannot_start_is_named_with_its_last_log_lines(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    lock = sqlite_process_lock(str(database))  # another service holds this SQLite ledger
    try:
        result = subprocess.run(
            [str(SYNCLEDGER), "demo", "--database-url", f"sqlite:///{database}"], cwd=tmp_path,
            env=demo_env(tmp_path), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        lock.close()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: the sync service did not start (exit code 1)")
    assert "another syncledger service is already running" in lines[0]
    kept = re.search(r"\(whole log: (\S+)\)$", lines[0])
    assert kept and Path(kept[1]).is_relative_to(tmp_path) and Path(kept[1]).exists()
    assert "Traceback" not in result.stdout + result.stderr
    assert_all_gone(pids(result.stdout))


def test_a_ledger_that_is_not_a_demo_is_never_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sync.toml"
    config.write_text(demo_config().to_toml(), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    runner = CliRunner()
    assert (
        runner.invoke(app, ["config", "apply", str(config), "--database-url", url]).exit_code == 0
    )
    result = runner.invoke(app, ["demo", "--database-url", url])
    assert result.exit_code == 1
    assert "already holds events" in result.output
    assert "pid" not in result.output  # refused before anything was started
    assert (tmp_path / "ledger.db").exists()


@pytest.mark.parametrize("url", ["memory://", "sqlite:///:memory:"])
def test_an_in_memory_ledger_is_refused_in_one_line(url: str) -> None:
    result = CliRunner().invoke(app, ["demo", "--database-url", url])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "cannot share the in-memory ledger" in lines[0]


def test_only_a_previous_demo_ledger_is_reset(tmp_path: Path) -> None:
    demo_db, other = tmp_path / "my-demo.db", tmp_path / "ledger.db"
    for path in (demo_db, Path(f"{demo_db}-wal"), other):
        path.write_bytes(b"x")
    assert reset_demo_database(f"sqlite:///{demo_db}") == str(demo_db)
    assert not demo_db.exists() and not Path(f"{demo_db}-wal").exists()
    assert reset_demo_database(f"sqlite:///{other}") is None
    assert other.exists()
    assert reset_demo_database("postgresql://localhost/test") is None
