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

import ctypes
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.intercom.client import IntercomCompanies
from adapters.salesforce.client import SalesforceAccounts
from adapters.simulators.salesforce_values import make_id
from adapters.simulators.server import free_port
from adapters.store.database import ledger_env
from adapters.sync.cycle import CycleReport, Overwrite
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog
from ledger.config import AttributeMapping, Direction, SyncConfig
from ledger.errors import SyncLedgerError

SEED = 2026
S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE
TOKEN = "demo-token"
SF_API = "/services/data/v62.0"
#: How often the demo's service polls Salesforce (the product's default is 300 s).
POLL_INTERVAL = 1.0
#: How long one step may take to be synced before the demo gives up.
SETTLE_TIMEOUT = 60.0
_QUOTED = re.compile(r"'[^']*'")


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


class DemoError(SyncLedgerError, RuntimeError):
    """The demo cannot run (an unusable ledger, a child process that failed, no progress)."""


@dataclass
class DemoSummary:
    """What the demo did: each step's outcome, and the whole ledger's tally."""

    database_url: str
    event_count: int = 0
    position: int = 0
    mappings_in_force: int = 0
    config_version: int = 0
    steps: list[tuple[str, str]] = field(default_factory=list)
    totals: CycleReport = field(default_factory=CycleReport)
    #: (system, reason) -> the records ignored for it
    ignored_by_reason: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    #: (system, reason with the key left out) -> how many changes could not sync for it
    not_synced_by_reason: Counter[tuple[str, str]] = field(default_factory=Counter)

    def tally(self, events: Iterator[tuple[int, ev.LedgerEvent]]) -> None:
        for position, e in events:
            self.event_count += 1
            self.position = position
            self.totals.tally([e])
            if isinstance(e, ev.RecordIgnored):
                self.ignored_by_reason.setdefault((e.system, e.reason), set()).add(e.record_id)
            elif isinstance(e, ev.NotSynced):
                reason = _QUOTED.sub("'…'", e.reason)  # one row per reason, not per key
                self.not_synced_by_reason[(e.system, reason)] += 1


# --- the sample data ---------------------------------------------------------------------------

_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
          "Wonka", "Cyberdyne", "Oceanic", "Stark", "Wayne", "Monarch", "Dunder")  # fmt: skip
_SUFFIXES = ("Labs", "Systems", "Corp", "GmbH", "Partners", "Logistics", "Foods", "Analytics")
_PLANS = ("Free", "Pro", "Enterprise")
_COMMON = ("Banking", "Technology", "Retail", "Agriculture", "Healthcare", "Other")


def _name(i: int) -> str:
    return f"{_WORDS[i % len(_WORDS)]} {_SUFFIXES[(i // len(_WORDS)) % len(_SUFFIXES)]} {i}"


@dataclass
class Sample:
    """The seed data files' contents, and which records play which part in the story."""

    accounts: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    pairs: dict[str, str] = field(default_factory=dict)  # company_id -> account Id
    duplicates: list[str] = field(default_factory=list)  # account Ids
    lonely_accounts: list[str] = field(default_factory=list)  # keys with no company
    lonely_companies: list[str] = field(default_factory=list)  # keys with no account


def sample_data(rng: random.Random) -> Sample:
    """About 250 accounts and 240 companies, with every kind of record the rules care about."""
    s = Sample()

    def maybe(p: float, value: Any) -> Any:
        return value if rng.random() < p else None

    rows: list[tuple[str, dict[str, Any]]] = []  # (role, seed row)
    for i in range(1, 201):
        key, name = f"AC-{i:05d}", _name(i)
        slug = name.lower().replace(" ", "-")
        industry = maybe(0.8, rng.choice(_COMMON))
        rows.append(("pair", {
            "AccountNumber": key,
            "Site": rng.choices([key, None, f"AC-{rng.randint(1, 200):05d}"], [7, 2, 1])[0],
            "Name": name,
            "Industry": industry,
            "NumberOfEmployees": maybe(0.7, rng.choice((5, 40, 250, 1200))),
            "Website": maybe(0.6, f"https://{slug}.example"),
            "Plan__c": maybe(0.75, rng.choice(_PLANS)),
        }))  # fmt: skip
        company: dict[str, Any] = {
            "company_id": key,
            "name": rng.choices([name, f"{name} Ltd", None], [6, 3, 1])[0],
            "industry": rng.choices([industry, rng.choice(_COMMON), None], [5, 4, 1])[0],
            "size": maybe(0.8, rng.choice((5, 40, 250, 1200, 5000))),
            "website": maybe(0.7, f"https://www.{slug}.example"),
        }
        if plan := maybe(0.5, rng.choice(_PLANS)):
            company["custom_attributes"] = {"plan": plan}
        s.companies.append({k: v for k, v in company.items() if v is not None})
    for i in rng.sample(range(1, 201), 12):  # duplicate account numbers
        rows.append(("duplicate", {"AccountNumber": f"AC-{i:05d}", "Name": f"{_name(i)} (dup)"}))
    rows.append(
        ("person", {"AccountNumber": "AC-00007", "Name": "Jane Doe", "IsPersonAccount": True})
    )
    for i in range(1, 41):  # accounts with no company, some without an account number
        key = f"AC-5{i:04d}"
        rows.append(("lonely", {"AccountNumber": key if i <= 30 else None, "Name": _name(500 + i)}))
        if i <= 30:
            s.lonely_accounts.append(key)
    rng.shuffle(rows)  # seeded in this order: some duplicates are newer than their original
    for n, (role, row) in enumerate(rows, start=1):
        row = {"Id": make_id("001", n), **{k: v for k, v in row.items() if v is not None}}
        s.accounts.append(row)
        if role == "pair":
            s.pairs[row["AccountNumber"]] = row["Id"]
        elif role == "duplicate":
            s.duplicates.append(row["Id"])
    for i in range(1, 41):  # companies with no account
        key = f"AC-7{i:04d}"
        s.companies.append({"company_id": key, "name": _name(700 + i), "size": 10 * i})
        s.lonely_companies.append(key)
    return s


# --- the child processes -----------------------------------------------------------------------


def _syncledger() -> list[str]:
    script = Path(sys.executable).parent / "syncledger"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from adapters.cli.main import main; main()"]


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, ask the kernel to SIGTERM a child when the demo dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class _Child:
    name: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(last) or "(its log is empty)"

    def failed(self, what: str) -> DemoError:
        code = self.process.poll()
        status = f"exit code {code}" if code is not None else "still running"
        return DemoError(
            f"the {self.name} {what} ({status}); its log ends: {self.tail()} "
            f"(whole log: {self.log})"
        )


class Stack:
    """Both simulators and the service, as child processes on loopback; stopped as a whole."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.secret = secrets.token_urlsafe(16)
        self.sf_url, self.ic_url, self.service_url = (
            f"http://127.0.0.1:{free_port()}" for _ in range(3)
        )
        self.children: list[_Child] = []
        self._preexec = _die_with_parent()

    @property
    def webhook_url(self) -> str:
        return f"{self.service_url}/webhooks/intercom"

    def settings(self) -> dict[str, str]:
        """The environment that points ``syncledger serve``/``sync --once`` at the simulators."""
        return {
            "SYNCLEDGER_DATABASE_URL": self.database_url,
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL": self.sf_url,
            "SYNCLEDGER_SALESFORCE_SESSION_ID": TOKEN,
            "SYNCLEDGER_INTERCOM_BASE_URL": self.ic_url,
            "SYNCLEDGER_INTERCOM_TOKEN": TOKEN,
            "SYNCLEDGER_INTERCOM_CLIENT_SECRET": self.secret,
            "SYNCLEDGER_POLL_INTERVAL_SECONDS": f"{POLL_INTERVAL:g}",
        }

    def launch(self, name: str, url: str, args: list[str]) -> _Child:
        """Start ``syncledger ARGS`` as a child, its output going to ``<name>.log``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}
        log = self.workdir / f"{name.lower().replace(' ', '-')}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*_syncledger(), *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env | self.settings(), start_new_session=True,
                preexec_fn=self._preexec,
            )  # fmt: skip
        child = _Child(name, url, log, process)
        self.children.append(child)
        return child

    @staticmethod
    def wait_ready(child: _Child, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``ready()``; DemoError if the child exits or never gets there."""
        deadline = time.monotonic() + timeout
        while True:
            if child.process.poll() is not None:
                raise child.failed("did not start")
            with suppress(httpx.HTTPError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise child.failed(f"did not answer within {timeout:g} s")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise child.failed("stopped unexpectedly")

    def stop(self) -> None:
        """Stop the service first (it finishes its cycle), then the simulators; never leave
        one running."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


# --- what users do, through the simulators' REST APIs ------------------------------------------


class _Users:
    """People editing records in Salesforce and Intercom, as the story goes."""

    def __init__(self, sample: Sample, rng: random.Random, sf: httpx.Client, ic: httpx.Client):
        self.sample, self.rng, self.sf, self.ic = sample, rng, sf, ic
        self.gone: set[str] = set()  # keys whose pair the story broke up

    def _call(self, client: httpx.Client, method: str, path: str, **kw: Any) -> httpx.Response:
        r = client.request(method, path, **kw)
        if r.status_code >= 300:
            system = "Salesforce" if client is self.sf else "Intercom"
            raise DemoError(f"{system} refused {method} {path}: {r.status_code} {r.text[:200]}")
        return r

    def update_account(self, sid: str, **values: Any) -> None:
        self._call(self.sf, "PATCH", f"{SF_API}/sobjects/Account/{sid}", json=values)

    def create_account(self, **values: Any) -> str:
        return str(
            self._call(self.sf, "POST", f"{SF_API}/sobjects/Account", json=values).json()["id"]
        )

    def upsert_company(self, key: str, **values: Any) -> None:
        self._call(self.ic, "POST", "/companies", json={"company_id": key, **values})

    def keys(self, n: int) -> list[str]:
        return self.rng.sample(sorted(set(self.sample.pairs) - self.gone), n)

    def intercom_users_update(self) -> str:
        for key in self.keys(40):
            attr = self.rng.choice(("industry", "size", "website", "name"))
            value = {
                "industry": self.rng.choice((*_COMMON, "Space Mining")),  # not a picklist value
                "size": self.rng.choice((12, 80, 300, 2500)),
                "website": f"https://{key.lower()}.example.org",
                "name": f"{_name(int(key[3:]))} (renamed in Intercom)",
            }[attr]
            self.upsert_company(key, **{attr: value})
        for key in self.sample.lonely_accounts[:3]:
            self.upsert_company(key, name=f"New company {key}", industry="Banking", size=25)
        # a visitor names their company in the Messenger: Intercom creates it, without a
        # company_id (the simulator's stand-in for qualification), and a user edits it later
        made = [
            self._call(self.ic, "POST", "/_sim/qualified_companies", json={"name": name}).json()
            for name in ("Visitor's Bakery", "Qualified Lead Ltd")
        ]
        self._call(self.ic, "PUT", f"/companies/{made[0]['id']}", json={"size": 3})
        return (
            "40 companies updated, 3 created for accounts that waited for one, "
            "2 created by Messenger qualification (no company_id)"
        )

    def salesforce_users_edit(self) -> str:
        chosen = self.keys(32)
        for key in chosen[:30]:
            sid = self.sample.pairs[key]
            change = self.rng.choice(("rename", "plan", "clear plan"))
            if change == "rename":
                self.update_account(sid, Name=f"{_name(int(key[3:]))} Holdings")
            else:
                plan = self.rng.choice(_PLANS) if change == "plan" else None
                self.update_account(sid, Plan__c=plan)
        moved, emptied = chosen[30], chosen[31]
        new_key = self.sample.lonely_companies[0]
        self.update_account(self.sample.pairs[moved], AccountNumber=new_key)
        self.gone.add(moved)
        self.update_account(self.sample.pairs[emptied], NumberOfEmployees=None)
        older = sorted(self.sample.duplicates)[0]
        self.update_account(older, Phone="+1 555 0100")  # now the most recently updated one
        for key in self.sample.lonely_companies[1:4]:
            self.create_account(AccountNumber=key, Name=f"Account for {key}", Plan__c="Pro")
        return (
            f"30 accounts edited; {moved} renumbered to {new_key}; a duplicate edited; "
            "3 accounts created for companies that waited for one"
        )

    def intercom_user_deletes(self) -> str:
        key = self.keys(1)[0]
        found = self._call(self.ic, "GET", "/companies", params={"company_id": key}).json()
        self._call(self.ic, "DELETE", f"/companies/{found['id']}")
        self.gone.add(key)
        return f"company {key} deleted"

    def users_touch_records(self) -> str:
        for key in self.keys(25):
            self.update_account(self.sample.pairs[key], Description="reviewed")
        for key in self.keys(10):
            self.upsert_company(key, size=self.rng.choice((15, 150, 1500)))
        return "25 accounts and 10 companies touched"


# --- the demo ----------------------------------------------------------------------------------


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
    :class:`adapters.store.database.DatabaseUrlError` for an unusable URL, and KeyboardInterrupt on
    Ctrl-C or SIGTERM (after stopping every child process).
    """
    url = _absolute(database_url)
    env = ledger_env(url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.popo" or "memory" in env.get(
        "SQLITE_DBNAME", ""
    ):
        raise DemoError(
            f"the demo's service runs in its own process and cannot share the in-memory ledger "
            f"{database_url}: give a SQLite file or a PostgreSQL URL"
        )
    app = LedgerApp(env=env)
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
                    _keep_running(stack, console)
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
        self.users = _Users(self.sample, rng, self.sf, self.ic)
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


def _keep_running(stack: Stack, console: Console) -> None:
    """Print where everything is, then wait for Ctrl-C (or a child that stops)."""
    where = {
        "Salesforce simulator": f"{stack.sf_url}{SF_API}/",
        "Intercom simulator": f"{stack.ic_url}/companies",
        "sync service": f"{stack.service_url}/health",
    }
    table = _table("Running (until Ctrl-C)", "", "", "pid", header=False)
    for child in stack.children:
        table.add_row(child.name, where[child.name], str(child.process.pid))
    table.add_row("webhook URL", stack.webhook_url, "")
    table.add_row("bearer token (both)", TOKEN, "")
    table.add_row("their logs", f"{stack.workdir}/", "")
    console.print(table)
    console.print("The settings that point syncledger (sync --once, events, config) at them:")
    for name, value in stack.settings().items():
        console.print(f"  export {name}={value}", soft_wrap=True, highlight=False)
    try:
        while True:
            stack.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("Stopping the service and both simulators…")


_RULES = {
    "source_empty": "source empty (skip_if_source_empty)",
    "destination_has_value": "destination had a value (skip_if_destination_has_value)",
    "already_equal": "destination already held the value",
    "no_mapping": "the mapping ended before the write was sent",
    "superseded": "a newer change decided the field again",
    "configuration_changed": "the attribute mapping is no longer configured",
    "retries_exhausted": "failed too often; given up",
}


def _table(title: str, *columns: str, header: bool = True) -> Table:
    table = Table(
        title=title, title_justify="left", title_style="bold", box=box.SIMPLE, show_header=header
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def _short(value: Any, width: int = 28) -> str:
    text = "∅" if value is None else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_summary(summary: DemoSummary, console: Console) -> None:
    """Print the demo's summary: what the ledger recorded, by kind of decision."""
    t = summary.totals
    mappings = _table("Mappings", "", "", header=False)
    mappings.add_row("made", str(t.mappings_made))
    for reason, count in sorted(t.unmapped_by_reason.items()):
        mappings.add_row(f"ended: {reason}", str(count))
    mappings.add_row("in force now", str(summary.mappings_in_force))

    writes = _table("Writes applied by direction", "direction", "applied", "failed")
    for label, system in (
        ("Salesforce → Intercom", ev.INTERCOM),
        ("Intercom → Salesforce", ev.SALESFORCE),
    ):
        failed = sum(1 for f in t.failures if f.system == system)
        writes.add_row(label, str(t.applied_by_system[system]), str(failed))

    skipped = _table("Writes skipped by rule", "rule", "count", "meaning")
    for rule, count in sorted(t.skipped_by_rule.items(), key=lambda rc: (-rc[1], rc[0])):
        skipped.add_row(rule, str(count), _RULES.get(rule, ""))

    rejected = _table("Rejected values", "company", "field", "value", "why")
    rows = [(r.company_id, r.field, r.source_value, r.reason) for r in t.rejected]
    rows += [(f.planned_write.company_id, f.planned_write.field, f.planned_write.value,
              f"refused by {f.system}: {f.error}") for f in t.failures]  # fmt: skip
    for company, name, value, why in rows[:8]:
        rejected.add_row(str(company), str(name), _short(value), why)
    if len(rows) > 8:
        rejected.add_row("…", f"{len(rows) - 8} more", "", "")

    per_field: Counter[str] = Counter()  # a varied sample: at most two per field
    sample: list[Overwrite] = []
    for o in t.overwrites:
        per_field[o.field] += 1
        if per_field[o.field] <= 2 and len(sample) < 8:
            sample.append(o)
    title = f"Overwrites (a sample of {len(sample)} of {len(t.overwrites)})"
    overwrites = _table(title, "company", "field: before → after", "mapping, config, trigger")
    for o in sample:
        change = f"{o.field}: {_short(o.before)} → {_short(o.after)}"
        overwrites.add_row(o.company_id, change, f"{o.mapping}, v{o.config_version}, {o.trigger}")

    ignored = _table("Records ignored, and why", "system", "reason", "records")
    for (system, reason), records in sorted(summary.ignored_by_reason.items()):
        ignored.add_row(system.capitalize(), reason, str(len(records)))
    not_synced = _table("Changes that could not sync, and why", "system", "reason", "times")
    for (system, reason), count in summary.not_synced_by_reason.most_common():
        not_synced.add_row(system.capitalize(), reason, str(count))

    echoes = _table("Echoes recognised", "our writes came back from", "times")
    for system in (ev.INTERCOM, ev.SALESFORCE):
        echoes.add_row(system.capitalize(), str(t.echoes_by_system[system]))

    ledger = _table("Ledger", "", "", header=False)
    ledger.add_row("events", str(summary.event_count))
    ledger.add_row("last position", str(summary.position))
    ledger.add_row("configuration in force", f"v{summary.config_version}")
    ledger.add_row("stored at", summary.database_url)
    tables = (mappings, writes, skipped, rejected, overwrites, ignored, not_synced, echoes, ledger)
    for table in tables:
        console.print(table)
    console.print(f"Explore it: syncledger events --database-url {summary.database_url}")
