"""The demo: a seeded story of changes on both sides, synced through a real ledger.

:func:`run_demo` seeds a :class:`~adapters.fakes.FakeSalesforce` org and a
:class:`~adapters.fakes.FakeIntercom` workspace with a few hundred records (matched pairs,
duplicate account numbers, a person account, companies without ``company_id``, conflicting and
empty values, records with no counterpart), runs scripted user actions and sync cycles
(:func:`adapters.cycle.run_cycle`) against the ledger at ``database_url``, and prints what the
ledger recorded. Everything is seeded, including the ledger's clock, so two runs tell the same
story.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adapters.cycle import CycleReport, Overwrite, run_cycle
from adapters.fakes import INDUSTRIES, FakeIntercom, FakeSalesforce, catalog
from adapters.store import ledger_env
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.config import AttributeMapping, Direction, SyncConfig

SEED = 2026
S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE


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


class DemoError(RuntimeError):
    """The demo cannot run on the given ledger."""


@dataclass
class DemoSummary:
    """What the demo did: one report per step that ran a cycle, and the whole ledger's tally."""

    database_url: str
    event_count: int = 0
    position: int = 0
    mappings_in_force: int = 0
    config_version: int = 0
    steps: list[tuple[str, str]] = field(default_factory=list)
    cycles: list[tuple[str, CycleReport]] = field(default_factory=list)
    totals: CycleReport = field(default_factory=CycleReport)


class DemoClock:
    """The ledger's clock in the demo: from 2026-01-01 UTC, one second per reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Tyrell",
          "Wonka", "Cyberdyne", "Oceanic", "Stark", "Wayne", "Monarch", "Dunder")  # fmt: skip
_SUFFIXES = ("Labs", "Systems", "Corp", "GmbH", "Partners", "Logistics", "Foods", "Analytics")
_PLANS = ("Free", "Pro", "Enterprise")


class _Story:
    """The seeded data and the scripted user actions."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sf = FakeSalesforce()
        self.ic = FakeIntercom()
        #: matched pairs: key -> (account id, intercom id)
        self.pairs: dict[str, tuple[str, str]] = {}
        self.duplicates: list[str] = []
        self.lonely_accounts: list[str] = []  # keys with no company
        self.lonely_companies: list[str] = []  # keys with no account
        self.unkeyed_companies: list[str] = []

    def name(self, i: int) -> str:
        return f"{_WORDS[i % len(_WORDS)]} {_SUFFIXES[(i // len(_WORDS)) % len(_SUFFIXES)]} {i}"

    def maybe(self, p: float, value: Any) -> Any:
        return value if self.rng.random() < p else None

    def seed(self) -> str:
        rng = self.rng
        accounts: list[tuple[str, str, dict[str, Any]]] = []  # (role, key, fields)
        for i in range(1, 201):
            key, name = f"AC-{i:05d}", self.name(i)
            slug = name.lower().replace(" ", "-")
            site = rng.choices([key, None, f"AC-{rng.randint(1, 200):05d}"], [7, 2, 1])[0]
            account = {
                "AccountNumber": key,
                "Site": site,
                "Name": name,
                "Industry": self.maybe(0.8, rng.choice(INDUSTRIES)),
                "NumberOfEmployees": self.maybe(0.7, rng.choice((5, 40, 250, 1200))),
                "Website": self.maybe(0.6, f"https://{slug}.example"),
                "Plan__c": self.maybe(0.75, rng.choice(_PLANS)),
            }
            accounts.append(("pair", key, account))
            company = {
                "name": rng.choices([name, f"{name} Ltd", None], [6, 3, 1])[0],
                "industry": rng.choices(
                    [account["Industry"], rng.choice(INDUSTRIES), None], [5, 4, 1]
                )[0],
                "size": self.maybe(0.8, rng.choice((5, 40, 250, 1200, 5000))),
                "website": self.maybe(0.7, f"https://www.{slug}.example"),
                "custom_attributes.plan": self.maybe(0.5, rng.choice(_PLANS)),
            }
            self.pairs[key] = ("", self.ic.create(key, company, notify=False))
        for i in rng.sample(range(1, 201), 12):  # duplicate account numbers
            key = f"AC-{i:05d}"
            dup = {"AccountNumber": key, "Name": f"{self.name(i)} (duplicate)", "Site": None}
            accounts.append(("duplicate", key, dup))
        accounts.append(("person", "AC-00007", {"AccountNumber": "AC-00007", "Name": "Jane Doe"}))
        for i in range(1, 41):  # accounts with no company, some without an account number
            key = f"AC-5{i:04d}"
            values = {"AccountNumber": key if i <= 30 else None, "Name": self.name(500 + i)}
            accounts.append(("lonely", key, values))
            if i <= 30:
                self.lonely_accounts.append(key)
        rng.shuffle(accounts)  # so some duplicates are newer than their original, some older
        for role, key, values in accounts:
            sid = self.sf.create(values, person=role == "person")
            if role == "pair":
                self.pairs[key] = (sid, self.pairs[key][1])
            elif role == "duplicate":
                self.duplicates.append(sid)
        for i in range(1, 41):  # companies with no account
            key = f"AC-7{i:04d}"
            self.ic.create(key, {"name": self.name(700 + i), "size": 10 * i}, notify=False)
            self.lonely_companies.append(key)
        for i in range(3):  # made automatically during qualification: no company_id
            iid = self.ic.create(None, {"name": f"qualified lead {i + 1}"}, notify=False)
            self.unkeyed_companies.append(iid)
        return (
            f"seeded {len(self.sf.accounts)} Salesforce accounts and "
            f"{len(self.ic.companies)} Intercom companies"
        )

    def keys(self, n: int) -> list[str]:
        live = sorted(k for k, (sid, iid) in self.pairs.items() if sid in self.sf.accounts)
        return self.rng.sample(live, n)

    def intercom_users_update(self) -> str:
        for key in self.keys(40):
            iid = self.pairs[key][1]
            attr = self.rng.choice(("industry", "size", "website", "name"))
            value = {
                "industry": self.rng.choice((*INDUSTRIES, "Space Mining")),
                "size": self.rng.choice((12, 80, 300, 2500)),
                "website": f"https://{key.lower()}.example.org",
                "name": f"{self.name(int(key[3:]))} (renamed in Intercom)",
            }[attr]
            self.ic.update(iid, {attr: value})
        for key in self.lonely_accounts[:3]:
            self.ic.create(key, {"name": f"New company {key}", "industry": "Banking", "size": 25})
        self.ic.update(self.unkeyed_companies[0], {"size": 3})
        return "40 companies updated, 3 created for waiting accounts, 1 without company_id"

    def salesforce_admin_retires_other(self) -> str:
        values = [v for v in INDUSTRIES if v != "Other"]
        self.sf.set_picklist_values("Industry", values)
        chosen = [
            k
            for k in self.keys(60)
            if (self.sf.get(self.pairs[k][0]) or {}).get("Industry") != "Other"
            and (self.ic.get(self.pairs[k][1]) or {}).get("industry") != "Other"
        ][:2]
        for key in chosen:
            self.ic.update(self.pairs[key][1], {"industry": "Other"})
        return f"Industry value 'Other' retired in Salesforce; {len(chosen)} companies set to it"

    def salesforce_users_edit(self) -> str:
        chosen = self.keys(33)
        for key in chosen[:30]:
            sid = self.pairs[key][0]
            change = self.rng.choice(("rename", "plan", "clear plan"))
            if change == "rename":
                self.sf.update(sid, Name=f"{self.name(int(key[3:]))} Holdings")
            elif change == "plan":
                self.sf.update(sid, Plan__c=self.rng.choice(_PLANS))
            else:
                self.sf.update(sid, Plan__c=None)
        moved, deleted, touched = chosen[30], chosen[31], chosen[32]
        new_key = self.lonely_companies[0]
        self.sf.update(self.pairs[moved][0], AccountNumber=new_key)
        self.sf.delete(self.pairs[deleted][0])
        older = sorted(self.duplicates)[0]
        self.sf.update(older, Phone="+1 555 0100")  # now the most recently updated duplicate
        self.sf.update(self.pairs[touched][0], NumberOfEmployees=None)
        for key in self.lonely_companies[1:4]:
            self.sf.create(AccountNumber=key, Name=f"Account for {key}", Plan__c="Pro")
        return (
            f"30 accounts edited; {moved} renumbered to {new_key}; {deleted} deleted; "
            "a duplicate edited; 3 accounts created"
        )

    def intercom_user_deletes(self) -> str:
        key = self.keys(1)[0]
        self.ic.delete(self.pairs[key][1])
        return f"company {key} deleted"

    def users_touch_records(self) -> str:
        for key in self.keys(25):
            self.sf.update(self.pairs[key][0], Description="reviewed")
        for key in self.keys(10):
            iid = self.pairs[key][1]
            if iid in self.ic.companies:
                self.ic.update(iid, {"size": self.rng.choice((15, 150, 1500))})
        return "25 accounts and 10 companies touched"


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


def run_demo(database_url: str, console: Console, *, seed: int = SEED) -> DemoSummary:
    """Run the scripted story against a fresh ledger at ``database_url`` and print a summary.

    Raises :class:`DemoError` if the ledger there already holds events, and
    :class:`adapters.store.DatabaseUrlError` for an unusable URL.
    """
    app = LedgerApp(env=ledger_env(database_url), clock=DemoClock())
    try:
        if app.state.position:
            raise DemoError(
                f"the ledger at {database_url} already holds events; "
                "the demo needs an empty one (use another --database-url)"
            )
        summary = _tell(app, _Story(seed), database_url, console)
    finally:
        app.close()
    render_summary(summary, console)
    return summary


def _tell(app: LedgerApp, story: _Story, database_url: str, console: Console) -> DemoSummary:
    summary = DemoSummary(database_url)

    def configure(identifier: str) -> Callable[[], str]:
        def apply() -> str:
            before = len(app.mappings())
            active = app.apply_config(demo_config(identifier), catalog())
            ended = before - len(app.mappings())
            gone = f"; {ended} mappings ended" if ended else ""
            return f"configuration v{active.version} in force: identifier {identifier}{gone}"

        return apply

    def cycle(label: str) -> Callable[[], str]:
        def run() -> str:
            report = run_cycle(app, story.sf, story.ic)
            summary.cycles.append((label, report))
            counts = {
                "changes": report.facts_ingested,
                "lookups": report.lookups,
                "mapped": report.mappings_made,
                "unmapped": report.mappings_ended,
                "writes applied": report.writes_applied,
                "failed": report.writes_failed,
                "skipped": report.writes_skipped,
                "rejected": len(report.rejected),
                "echoes": report.echoes,
            }
            return ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing to do"

        return run

    steps: list[tuple[str, Callable[[], str]]] = [
        ("Seeding Salesforce and Intercom", story.seed),
        ("Admin applies the configuration", configure("AccountNumber")),
        ("Initial sync cycle", cycle("initial")),
        ("Intercom users update companies", story.intercom_users_update),
        ("Sync cycle", cycle("after Intercom updates")),
        ("Salesforce admin changes a picklist", story.salesforce_admin_retires_other),
        ("Sync cycle", cycle("after the picklist change")),
        ("Salesforce users edit accounts", story.salesforce_users_edit),
        ("Sync cycle", cycle("after Salesforce edits")),
        ("An Intercom company is deleted", story.intercom_user_deletes),
        ("Sync cycle", cycle("after the deletion")),
        ("Admin switches the identifier to Site", configure("Site")),
        ("Users on both sides touch records", story.users_touch_records),
        ("Sync cycle", cycle("under the new identifier")),
        ("Final cycle: our writes come back", cycle("final")),
    ]
    columns = (
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("Demo", total=len(steps))
        for title, step in steps:
            progress.update(task, description=title)
            outcome = step()
            summary.steps.append((title, outcome))
            progress.console.print(f"[green]✓[/] {title}: {escape(outcome)}")
            progress.advance(task)
    for _, e in app.read_events():
        summary.event_count += 1
        summary.totals.tally([e])
    summary.position = app.state.position
    summary.mappings_in_force = len(app.mappings())
    summary.config_version = app.config.version
    return summary


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
    mappings.add_row("records never synced (ignored)", str(len(t.ignored)))

    writes = _table("Writes applied by direction", "direction", "applied", "failed")
    for label, system in (
        ("Salesforce → Intercom", ev.INTERCOM),
        ("Intercom → Salesforce", ev.SALESFORCE),
    ):
        failed = sum(1 for f in t.failures if f["system"] == system)
        writes.add_row(label, str(t.applied_by_system[system]), str(failed))

    skipped = _table("Writes skipped by rule", "rule", "count", "meaning")
    for rule, count in sorted(t.skipped_by_rule.items(), key=lambda rc: (-rc[1], rc[0])):
        skipped.add_row(rule, str(count), _RULES.get(rule, ""))

    rejected = _table("Rejected values", "company", "field", "value", "why")
    rows = [(r["company_id"], r["field"], r["source_value"], r["reason"]) for r in t.rejected]
    rows += [(f["company_id"], f["field"], f["value"], f"refused by {f['system']}: {f['error']}")
             for f in t.failures]  # fmt: skip
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

    echoes = _table("Echoes recognised", "our writes came back from", "times")
    for system in (ev.INTERCOM, ev.SALESFORCE):
        echoes.add_row(system.capitalize(), str(t.echoes_by_system[system]))

    ledger = _table("Ledger", "", "", header=False)
    ledger.add_row("events", str(summary.event_count))
    ledger.add_row("last position", str(summary.position))
    ledger.add_row("configuration in force", f"v{summary.config_version}")
    ledger.add_row("stored at", summary.database_url)
    for table in (mappings, writes, skipped, rejected, overwrites, echoes, ledger):
        console.print(table)
    console.print(f"Explore it: syncledger events --database-url {summary.database_url}")
