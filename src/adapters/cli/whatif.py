"""``syncledger whatif identifier FIELD``: what a new identifier field would do to the mappings
(:mod:`ledger.whatif`), before the configuration changes. ``register(app)`` adds the ``whatif``
group to the ``syncledger`` app.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from adapters.bootstrap import salesforce_accounts
from adapters.cli.common import (
    SHOWN,
    console,
    fail,
    ledger_at,
    ledger_url,
    read_settings,
    task_bars,
)
from adapters.salesforce.client import SalesforceAccounts
from adapters.salesforce.errors import SalesforceError
from adapters.sync.fakes import catalog
from ledger.catalog import FieldCatalog
from ledger.config import SyncConfig
from ledger.validation import validate_config
from ledger.whatif import AccountView, WhatIf, accounts_from_state, identifier_what_if

group = typer.Typer(help="What a configuration change would do, before it is made.")


def register(app: typer.Typer) -> None:
    """Add the ``whatif`` group to ``app``."""
    app.add_typer(group, name="whatif")


@group.command("identifier")
def whatif_identifier(
    field_name: Annotated[str, typer.Argument(metavar="FIELD", help="The candidate field.")],
    refresh: Annotated[
        bool,
        typer.Option(help="Read the field's current value of every account (batched SOQL)."),
    ] = False,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
    output: Annotated[
        Path | None, typer.Option("--report", help="Also write the report to this .json file.")
    ] = None,
) -> None:
    """Report the pairs a new identifier field would keep, lose and newly match, and the
    values several accounts share (ties), from the ledger's observations (or --refresh)."""
    settings = read_settings()
    out = console()
    with ledger_at(ledger_url(database_url), create=False) as ledger:
        sf = None
        try:
            if settings.salesforce_auth() is not None:
                sf = salesforce_accounts(settings)
            if refresh and sf is None:
                fail("--refresh reads Salesforce: set SYNCLEDGER_SALESFORCE_* first", 2)
            fields = _salesforce_catalog(sf)
            problems = validate_config(SyncConfig(identifier_field=field_name), fields)
            if problems:
                fail(f"{field_name} cannot be the identifier: {problems[0].reason}", 1)
            candidate = fields.salesforce[field_name]
            if sf is not None and refresh:
                accounts = _read_accounts(sf, field_name, out)
            else:
                accounts = accounts_from_state(ledger.state, field_name)
        except SalesforceError as exc:
            fail(f"Salesforce: {exc.message}", 2)
        finally:
            if sf is not None:
                sf.close()
        companies = dict(ledger.state.company_by_key)
        result = identifier_what_if(candidate, accounts, companies, ledger.mappings())
    _render_whatif(result, ledger.config.identifier.name, refresh, out)
    if output is not None:
        output.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")


def _read_accounts(sf: SalesforceAccounts, field_name: str, out: Console) -> list[AccountView]:
    """Every account's current value of ``field_name``, read from Salesforce (batched SOQL)."""
    sf.fields = (field_name,)
    with task_bars(out) as bar:
        bar.add_task(f"reading {field_name} of every account", total=None)
        fresh = sf.poll(None).changes
    return [
        AccountView(
            c.salesforce_id, c.fields.get(field_name), c.system_modstamp, c.is_person_account
        )
        for c in fresh
    ]


def _salesforce_catalog(sf: SalesforceAccounts | None) -> FieldCatalog:
    if sf is None:
        Console(stderr=True, highlight=False).print(
            "[dim]no SYNCLEDGER_SALESFORCE_* settings: checking the field against the "
            "simulators' sample catalog[/]"
        )
        return catalog()
    return FieldCatalog.of(sf.describe(), ())


def _render_whatif(result: WhatIf, current: str, refreshed: bool, out: Console) -> None:
    source = "a fresh read of every account" if refreshed else "the ledger's observations"
    out.print(f"identifier {current} → {result.candidate}, from {source}:")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    names = {"stay_matched": "pairs that stay matched", "lost": "pairs lost",
             "newly_matched": "pairs newly matched", "tied_keys": "values shared (ties)",
             "accounts": "business accounts", "accounts_without_value": "… without a value",
             "accounts_not_observed": "… never observed with the field"}  # fmt: skip
    for key, n in result.counts().items():
        table.add_row(names[key], str(n))
    out.print(table)
    if result.unobserved:
        out.print(
            f"[yellow]{result.unobserved} account(s) were never read with {result.candidate}; "
            "use --refresh for a complete answer[/]"
        )
    for title, rows in (("lost", result.lost), ("newly matched", result.new)):
        for r in rows[:SHOWN]:
            out.print(
                f"  {title}: {escape(r.company_id)} {r.intercom_id} ↔ {r.salesforce_id}"
                f" ({escape(r.why)})"
            )
        if len(rows) > SHOWN:
            out.print(f"  … and {len(rows) - SHOWN} more {title} (see --report)")
    for key, ids in list(result.ties.items())[:SHOWN]:
        out.print(f"  tie: {escape(key)} on {', '.join(ids)} (the first holds it)")
