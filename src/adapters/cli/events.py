"""``syncledger events``: the ledger's events in order, one line each.

``register(app)`` adds the command to the ``syncledger`` app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from adapters.cli.common import DatabaseUrl, console, ledger_at, ledger_url
from ledger import events as ev


def register(app: typer.Typer) -> None:
    """Add ``events`` to ``app``."""
    app.command()(events)


def events(
    database_url: DatabaseUrl = None,
    after: Annotated[int, typer.Option(min=0, help="Show events after this position.")] = 0,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
) -> None:
    """List the ledger's events in order, with their positions and key fields."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("position", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("event", no_wrap=True)
    table.add_column("details")
    last = after
    with ledger_at(ledger_url(database_url), create=False) as ledger:
        for position, event in ledger.read_events(after=after, limit=limit):
            time = event.timestamp.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(str(position), time, type(event).__name__, escape(describe(event)))
            last = position
    out = console()
    if not table.row_count:
        out.print(f"no events after position {after}")
        return
    out.print(table)
    out.print(f"{table.row_count} event(s); continue with --after {last}")


def describe(e: ev.LedgerEvent) -> str:
    """The key fields of one ledger event, on one line."""
    if isinstance(e, ev.ConfigurationApplied):
        c = e.config
        return f"v{e.version}: identifier {c['identifier']['name']}, {len(c['mappings'])} mappings"
    if isinstance(e, ev.AccountIdentifierChanged):
        return f"{e.salesforce_id} {e.identifier_field}: {e.old_value} → {e.new_value}"
    if isinstance(e, ev.CompanyFact):
        return f"{e.intercom_id} company_id={e.company_id} changed={_names(e.changed)} ({e.source})"
    if isinstance(e, ev.AccountFact):
        return f"{e.salesforce_id} changed={_names(e.changed)} ({e.source})"
    if isinstance(e, ev.CompanyDeleted):
        return f"{e.intercom_id} company_id={e.company_id} ({e.source})"
    if isinstance(e, ev.AccountDeleted):
        return f"{e.salesforce_id} ({e.source})"
    if isinstance(e, ev.LookupAnswered):
        return f"{e.system} {e.field} = {e.key!r}: found {', '.join(e.found) or 'nothing'}"
    if isinstance(e, ev.RecordIgnored | ev.NotSynced):
        return f"{e.system} {e.record_id}: {e.reason}"
    if isinstance(e, ev.EchoRecognised):
        return f"{e.system} {e.record_id}: {_names(e.fields)}"
    if isinstance(e, ev.IdentityMapped):
        link = f"{e.company_id}: {e.intercom_id} ↔ {e.salesforce_id}"
        return f"{link} ({e.trigger}, v{e.config_version})"
    if isinstance(e, ev.IdentityUnmapped):
        return f"{e.company_id}: {e.intercom_id} ↔ {e.salesforce_id}: {e.reason}"
    if isinstance(e, ev.SyncPlanned):
        counts = f"{len(e.planned)} planned, {len(e.skipped)} skipped, {len(e.rejected)} rejected"
        return f"{e.system} {e.record_id}: {counts} ({e.trigger}, v{e.config_version})"
    if isinstance(e, ev.WriteSkipped):
        return f"{e.system} {e.record_id}.{e.planned_write.field}: {e.rule}"
    if isinstance(e, ev.WriteApplied):
        w = e.planned_write
        return f"{e.system} {e.record_id}.{w.field}: {e.before!r} → {w.value!r}"
    if isinstance(e, ev.WriteFailed):
        again = "will retry" if e.retryable else "final"
        return f"{e.system} {e.record_id}.{e.planned_write.field}: {e.code} {e.error} ({again})"
    if isinstance(e, ev.LedgerAdvanced):
        return f"{e.summary} ({e.events} events)"
    return ""


def _names(names: list[str], most: int = 4) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", +{len(names) - most}" if len(names) > most else "")
