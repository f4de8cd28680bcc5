"""What the demo prints at the end: the whole ledger's tally, by kind of decision."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from adapters.sync.cycle import CycleReport, Overwrite
from ledger import events as ev

_QUOTED = re.compile(r"'[^']*'")


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


_RULES = {
    "source_empty": "source empty (skip_if_source_empty)",
    "destination_has_value": "destination had a value (skip_if_destination_has_value)",
    "already_equal": "destination already held the value",
    "no_mapping": "the mapping ended before the write was sent",
    "superseded": "a newer change decided the field again",
    "configuration_changed": "the attribute mapping is no longer configured",
    "retries_exhausted": "failed too often; given up",
}


def titled_table(title: str, *columns: str, header: bool = True) -> Table:
    """A plain table with its title on the left, as every table the demo prints."""
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
    mappings = titled_table("Mappings", "", "", header=False)
    mappings.add_row("made", str(t.mappings_made))
    for reason, count in sorted(t.unmapped_by_reason.items()):
        mappings.add_row(f"ended: {reason}", str(count))
    mappings.add_row("in force now", str(summary.mappings_in_force))

    writes = titled_table("Writes applied by direction", "direction", "applied", "failed")
    for label, system in (
        ("Salesforce → Intercom", ev.INTERCOM),
        ("Intercom → Salesforce", ev.SALESFORCE),
    ):
        failed = sum(1 for f in t.failures if f.system == system)
        writes.add_row(label, str(t.applied_by_system[system]), str(failed))

    skipped = titled_table("Writes skipped by rule", "rule", "count", "meaning")
    for rule, count in sorted(t.skipped_by_rule.items(), key=lambda rc: (-rc[1], rc[0])):
        skipped.add_row(rule, str(count), _RULES.get(rule, ""))

    rejected = titled_table("Rejected values", "company", "field", "value", "why")
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
    overwrites = titled_table(title, "company", "field: before → after", "mapping, config, trigger")
    for o in sample:
        change = f"{o.field}: {_short(o.before)} → {_short(o.after)}"
        overwrites.add_row(o.company_id, change, f"{o.mapping}, v{o.config_version}, {o.trigger}")

    ignored = titled_table("Records ignored, and why", "system", "reason", "records")
    for (system, reason), records in sorted(summary.ignored_by_reason.items()):
        ignored.add_row(system.capitalize(), reason, str(len(records)))
    not_synced = titled_table("Changes that could not sync, and why", "system", "reason", "times")
    for (system, reason), count in summary.not_synced_by_reason.most_common():
        not_synced.add_row(system.capitalize(), reason, str(count))

    echoes = titled_table("Echoes recognised", "our writes came back from", "times")
    for system in (ev.INTERCOM, ev.SALESFORCE):
        echoes.add_row(system.capitalize(), str(t.echoes_by_system[system]))

    ledger = titled_table("Ledger", "", "", header=False)
    ledger.add_row("events", str(summary.event_count))
    ledger.add_row("last position", str(summary.position))
    ledger.add_row("configuration in force", f"v{summary.config_version}")
    ledger.add_row("stored at", summary.database_url)
    tables = (mappings, writes, skipped, rejected, overwrites, ignored, not_synced, echoes, ledger)
    for table in tables:
        console.print(table)
    console.print(f"Explore it: syncledger events --database-url {summary.database_url}")
