"""``syncledger config validate|apply|show``: check a configuration file, put it in force, show
the one in force. ``register(app)`` adds the ``config`` group to the ``syncledger`` app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from adapters.bootstrap import live_catalog
from adapters.cli.common import (
    DatabaseUrl,
    console,
    fail,
    ledger_at,
    ledger_url,
    read_config,
    read_settings,
    refuse,
)
from adapters.intercom.client import IntercomError
from adapters.salesforce.errors import SalesforceError
from adapters.settings import SettingsError
from adapters.sync.fakes import catalog
from ledger.catalog import FieldCatalog
from ledger.config import ConfigError
from ledger.validation import validate_config

ConfigFile = Annotated[
    Path, typer.Argument(help="A configuration file (TOML).", show_default=False)
]

group = typer.Typer(help="Validate, apply and show sync configurations.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``config`` group to ``app``."""
    app.add_typer(group, name="config")


def field_catalog() -> FieldCatalog:
    """The live catalogs when Salesforce and Intercom are configured, else the sample catalog
    of the simulators (said on stderr)."""
    settings = read_settings()
    try:
        live = live_catalog(settings)
    except SettingsError as exc:
        fail(str(exc), 2)
    except (SalesforceError, IntercomError) as exc:
        fail(f"cannot read the field catalogs: {exc}", 2)
    if live is not None:
        return live
    Console(stderr=True, highlight=False).print(
        "[dim]no SYNCLEDGER_SALESFORCE_*/SYNCLEDGER_INTERCOM_* settings: checking against the "
        "simulators' sample catalog[/]"
    )
    return catalog()


@group.command("validate")
def config_validate(file: ConfigFile) -> None:
    """Check a configuration file against the field catalogs; print every problem."""
    config = read_config(file)
    problems = validate_config(config, field_catalog())
    if problems:
        refuse(file, problems)
    console().print(
        f"[green]{escape(str(file))}: valid[/] (identifier {config.identifier_field}, "
        f"{len(config.attributes)} attribute mapping(s))"
    )


@group.command("apply")
def config_apply(file: ConfigFile, database_url: DatabaseUrl = None) -> None:
    """Validate a configuration file and put it in force as the next version."""
    config = read_config(file)
    url = ledger_url(database_url)
    with ledger_at(url, create=True) as ledger:
        before = len(ledger.mappings())
        try:
            active = ledger.apply_config(config, field_catalog())
        except ConfigError as exc:
            refuse(file, exc.problems)
        ended = before - len(ledger.mappings())
    out = console()
    out.print(
        f"[green]configuration version {active.version} in force[/] "
        f"(identifier {active.identifier_field}, {len(active.mappings)} attribute mapping(s))"
    )
    if ended:
        out.print(f"{ended} mapping(s) ended: the identifier field changed")


@group.command("show")
def config_show(database_url: DatabaseUrl = None) -> None:
    """Print the configuration in force, in the file format, with its version."""
    with ledger_at(ledger_url(database_url), create=False) as ledger:
        active = ledger.config
    if active.version == 0:
        typer.echo("# version 0: no configuration applied yet (the default: nothing syncs)")
    else:
        typer.echo(f"# version {active.version}")
    typer.echo(active.as_sync_config().to_toml(), nl=False)
