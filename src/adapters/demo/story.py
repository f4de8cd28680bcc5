"""The demo: the real service between the two simulators, told a seeded story.

:func:`run_demo` starts three child processes on free loopback ports: ``syncledger simulate
salesforce`` and ``syncledger simulate intercom``, seeded from data files with a few hundred
records (matched pairs, duplicate account numbers, a person account, conflicting and empty
values, records with no counterpart), and ``syncledger serve`` on the ledger at
``database_url``, which polls the Salesforce simulator and receives the Intercom simulator's
signed webhooks. Users then change records through the simulators' REST APIs; after each step
the demo waits until the service has caught up, and at the end it prints what the ledger
recorded. The data and the story are seeded; timing is real, so a few counts (echoes, for
instance) can differ between runs.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from adapters.bootstrap import open_ledger, store_env
from adapters.demo.errors import DemoError
from adapters.demo.sample import sample_data
from adapters.demo.stack import POLL_INTERVAL, SF_API, TOKEN, Stack, run_until_interrupted
from adapters.demo.summary import DemoSummary, render_summary
from adapters.demo.users import Users
from adapters.intercom.client import IntercomCompanies
from adapters.salesforce.client import SalesforceAccounts
from adapters.service.errors import ServiceError
from adapters.service.lease import sqlite_process_lock
from adapters.sync.cycle import CycleReport
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from ledger.config import AttributeMapping, Direction, SyncConfig

SEED = 2026
S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE
#: How long one step may take to be synced before the demo gives up.
SETTLE_TIMEOUT = 60.0


def demo_config(identifier_field: str = "AccountNumber") -> SyncConfig:
    """The demo's configuration: names and plans flow to Intercom; industry, size and website
    flow to Salesforce."""
    return SyncConfig(
        identifier_field=identifier_field,
        attributes=(
            AttributeMapping("name", "Name", S2I),
            AttributeMapping("custom_attributes.plan", "Plan__c", S2I, skip_if_source_empty=True),
            AttributeMapping("industry", "Industry", I2S),
            AttributeMapping("size", "NumberOfEmployees", I2S),
            AttributeMapping("website", "Website", I2S, skip_if_destination_has_value=True),
        ),
    )


def reset_demo_database(database_url: str) -> str | None:
    """Remove the SQLite file a previous demo left at ``database_url``; return its path.

    Only a file whose name contains "demo" is removed, so a mistyped URL never deletes a real
    ledger; any other store must be empty (:func:`run_demo` refuses one that is not).
    """
    if not database_url.startswith("sqlite:///"):
        return None
    path = Path(database_url.removeprefix("sqlite:///").split("?", 1)[0])
    if "demo" not in path.name or not path.is_file():
        return None
    try:  # never pull the file from under a service running on it
        sqlite_process_lock(str(path)).close()
    except ServiceError:
        return None
    for extra in ("-wal", "-shm", "-journal"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    path.unlink()
    return str(path)


def _absolute(database_url: str) -> str:
    """The URL with a relative SQLite path made absolute (the children may run elsewhere)."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        rest = database_url.removeprefix("sqlite:///")
        if rest and not rest.startswith((":memory:", "file:")):
            return f"sqlite:///{Path.cwd() / rest}"
    return database_url


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the demo unwinds like Ctrl-C, so its children are stopped too."""

    def interrupt(_signum: int, _frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    database_url: str, console: Console, *, keep_running: bool = False, seed: int = SEED
) -> DemoSummary:
    """Run the story against the real service on a fresh ledger at ``database_url``; print a
    summary. With ``keep_running``, leave everything up until Ctrl-C.

    Raises :class:`DemoError` if the ledger already holds events or a child process fails,
    :class:`adapters.store.database.DatabaseUrlError` for an unusable URL,
    :class:`adapters.store.database.StoreUnavailable` for a database that cannot be opened, and
    KeyboardInterrupt on Ctrl-C or SIGTERM (after stopping every child process).
    """
    url = _absolute(database_url)
    env = store_env(url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.popo" or "memory" in env.get(
        "SQLITE_DBNAME", ""
    ):
        raise DemoError(
            f"the demo's service runs in its own process and cannot share the in-memory ledger "
            f"{database_url}: give a SQLite file or a PostgreSQL URL"
        )
    app = open_ledger(url)
    workdir = Path(tempfile.mkdtemp(prefix="syncledger-demo-"))
    keep_logs = False
    try:
        if app.state.position:
            raise DemoError(
                f"the ledger at {database_url} already holds events; "
                "the demo needs an empty one (use another --database-url)"
            )
        with _sigterm_as_interrupt():
            stack = Stack(workdir, url)
            try:
                summary = _Demo(app, stack, console, random.Random(seed)).tell()
                render_summary(summary, console)
                if keep_running:
                    run_until_interrupted(stack, console)
                return summary
            except DemoError:
                keep_logs = True
                raise
            finally:
                stack.stop()
    finally:
        app.close()
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)


class _Demo:
    def __init__(self, app: LedgerApp, stack: Stack, console: Console, rng: random.Random):
        self.app, self.stack, self.console, self.rng = app, stack, console, rng
        self.summary = DemoSummary(stack.database_url)
        self.sample = sample_data(rng)
        headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        self.sf = httpx.Client(base_url=stack.sf_url, headers=headers, timeout=10)
        self.ic = httpx.Client(base_url=stack.ic_url, headers=headers, timeout=10)
        self.users = Users(self.sample, rng, self.sf, self.ic)
        self.position = 0

    def tell(self) -> DemoSummary:
        users = self.users
        steps: list[tuple[str, Callable[[], str]]] = [
            ("Start Salesforce and Intercom", self.start_simulators),
            ("Admin applies the configuration", self.configure("AccountNumber")),
            ("Start the sync service", self.start_service),
            ("Initial sync", self.settle),
            ("Intercom users update companies", users.intercom_users_update),
            ("Sync", self.settle),
            ("Salesforce users edit accounts", users.salesforce_users_edit),
            ("Sync", self.settle),
            ("An Intercom company is deleted", users.intercom_user_deletes),
            ("Sync", self.settle),
            ("Admin switches the identifier to Site", self.configure("Site")),
            ("Users on both sides touch records", users.users_touch_records),
            ("Sync; our writes come back as echoes", self.settle),
        ]
        columns = (
            TextColumn("{task.description:<44}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        try:
            with Progress(*columns, console=self.console) as progress:
                self.progress = progress
                self.task = progress.add_task("Demo", total=len(steps))
                for title, step in steps:
                    progress.update(self.task, description=title)
                    outcome = step()
                    self.summary.steps.append((title, outcome))
                    progress.console.print(f"[green]✓[/] {title}: {escape(outcome)}")
                    progress.advance(self.task)
                progress.update(self.task, description="Done")
        finally:
            self.sf.close()
            self.ic.close()
        self.summary.tally(self.app.read_events())
        self.summary.mappings_in_force = len(self.app.mappings())
        self.summary.config_version = self.app.config.version
        return self.summary

    def start_simulators(self) -> str:
        stack, work = self.stack, self.stack.workdir
        accounts, companies = work / "salesforce.json", work / "intercom.json"
        accounts.write_text(json.dumps({"accounts": self.sample.accounts}), encoding="utf-8")
        attributes = [{"name": "plan", "data_type": "string"}]
        body = {"data_attributes": attributes, "companies": self.sample.companies}
        companies.write_text(json.dumps(body), encoding="utf-8")
        sf_port, ic_port = stack.sf_url.rsplit(":", 1)[1], stack.ic_url.rsplit(":", 1)[1]
        salesforce = stack.launch(
            "Salesforce simulator", stack.sf_url,
            ["simulate", "salesforce", "--port", sf_port, "--token", TOKEN,
             "--data", str(accounts)],
        )  # fmt: skip
        intercom = stack.launch(
            "Intercom simulator", stack.ic_url,
            ["simulate", "intercom", "--port", ic_port, "--token", TOKEN, "--data", str(companies),
             "--webhook-url", stack.webhook_url, "--client-secret", stack.secret],
        )  # fmt: skip
        stack.wait_ready(salesforce, lambda: self.sf.get(f"{SF_API}/limits").status_code == 200)
        stack.wait_ready(intercom, lambda: self.ic.get("/data_attributes").status_code == 200)
        return (
            f"{len(self.sample.accounts)} accounts and {len(self.sample.companies)} companies "
            f"seeded; {self._pids()}"
        )

    def _pids(self) -> str:
        return ", ".join(f"{c.name} {c.url} (pid {c.process.pid})" for c in self.stack.children)

    def configure(self, identifier: str) -> Callable[[], str]:
        def apply() -> str:
            accounts = SalesforceAccounts(
                self.stack.sf_url, TOKEN, fields=("Name",), identifier_field=identifier
            )
            with accounts, IntercomCompanies(self.stack.ic_url, TOKEN) as companies:
                catalog = FieldCatalog.of(accounts.describe(), companies.catalog())
            before = len(self.app.mappings())
            active = self.app.apply_config(demo_config(identifier), catalog)
            ended = before - len(self.app.mappings())
            self.position = self.app.state.position  # the next sync reports from here
            gone = f"; {ended} mappings ended" if ended else ""
            return f"configuration v{active.version} in force: identifier {identifier}{gone}"

        return apply

    def start_service(self) -> str:
        stack = self.stack
        port = stack.service_url.rsplit(":", 1)[1]
        child = stack.launch("sync service", stack.service_url, ["serve", "--port", port])
        health = f"{stack.service_url}/health"
        stack.wait_ready(child, lambda: httpx.get(health, timeout=2).status_code < 500)
        return (
            f"{stack.service_url} (pid {child.process.pid}), polling Salesforce every "
            f"{POLL_INTERVAL:g} s, webhooks at {stack.webhook_url}"
        )

    def health(self) -> dict[str, Any]:
        try:
            body: dict[str, Any] = httpx.get(f"{self.stack.service_url}/health", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            self.stack.check_alive()
            return {}
        return body

    def settle(self) -> str:
        """Wait until the service has nothing left to do: no notification waiting, no write
        pending, and a whole Salesforce poll that recorded nothing new."""
        started = time.monotonic()
        first = self.health().get("worker", {}).get("polls", 0)
        quiet: tuple[int, int] | None = None  # (polls, ledger position) when it went quiet
        while True:
            self.stack.check_alive()
            h = self.health()
            worker = h.get("worker") or {}
            polls, position = int(worker.get("polls", 0)), int(h.get("ledger_position", -1))
            busy = bool(h.get("inbox") or h.get("pending_writes")) or not h
            if worker.get("failures_in_a_row", 0) >= 3:
                raise DemoError(f"the sync service keeps failing: {worker.get('last_error')}")
            if busy or polls < first + 1 or quiet is None or quiet[1] != position:
                quiet = None if busy else (polls, position)
            elif polls >= quiet[0] + 1:
                break
            waiting = f"{h.get('pending_writes', 0)} writes pending, poll {polls}"
            self.progress.update(self.task, description=f"Sync ({waiting})")
            if time.monotonic() - started > SETTLE_TIMEOUT:
                raise DemoError(
                    f"the sync service did not catch up within {SETTLE_TIMEOUT:g} s "
                    f"({waiting}); its log: {self.stack.children[-1].log}"
                )
            time.sleep(0.2)
        report = CycleReport().tally(e for _, e in self.app.read_events(after=self.position))
        self.position = position
        counts = {
            "mapped": report.mappings_made,
            "unmapped": report.mappings_ended,
            "writes applied": report.writes_applied,
            "failed": report.writes_failed,
            "skipped": report.writes_skipped,
            "rejected": len(report.rejected),
            "echoes": report.echoes,
        }
        done = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing to do"
        return f"{done} ({time.monotonic() - started:.1f} s)"
