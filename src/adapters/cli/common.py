"""What every ``syncledger`` command shares: the output consoles, the one-line error, the
database URL option, opening the ledger and both systems through :mod:`adapters.bootstrap`,
reading a configuration file, and the progress bars and cycle report they print.

The store's errors (:class:`DatabaseUrlError`, :class:`LedgerNotFound`,
:class:`StoreUnavailable`) and unusable settings become ``error: …`` and exit code 2 here, so
no command translates them on its own.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from adapters.bootstrap import Connections, connections, open_ledger, writer_lease
from adapters.intercom.client import IntercomAuthError
from adapters.salesforce.errors import SalesforceAuthError
from adapters.service.errors import ServiceError
from adapters.settings import Settings, SettingsError, load_settings
from adapters.store.chain import ChainMissing
from adapters.store.database import DatabaseUrlError, LedgerNotFound, StoreUnavailable
from adapters.sync.cycle import CycleReport
from ledger.application import LedgerApp
from ledger.config import ConfigError, ConfigProblem, SyncConfig, parse_config

DATABASE_URL_ENV = "SYNCLEDGER_DATABASE_URL"
DEFAULT_DATABASE_URL = "sqlite:///syncledger.db"
#: How many rows of a long list (overwrites, lost pairs) a command prints before "… and N more".
SHOWN = 20

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help=f"Ledger database URL [default: ${DATABASE_URL_ENV}, else {DEFAULT_DATABASE_URL}]",
        show_default=False,
    ),
]


def console() -> Console:
    """The console a command's output goes to (stdout, no highlighting)."""
    return Console(highlight=False)


def fail(message: str, code: int) -> NoReturn:
    """Print ``error: message`` in one red line on stderr and exit with ``code``."""
    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def ledger_url(option: str | None) -> str:
    """``--database-url``, else ``$SYNCLEDGER_DATABASE_URL``, else ``sqlite:///syncledger.db``."""
    return option or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def read_settings() -> Settings:
    """The ``SYNCLEDGER_*`` settings; unusable ones are one line and exit code 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        fail(str(exc), 2)


@contextmanager
def store_errors() -> Iterator[None]:
    """A bad URL, a missing ledger, a database that cannot be opened or a ledger whose hash
    chain is missing: one line, exit code 2."""
    try:
        yield
    except (DatabaseUrlError, LedgerNotFound, StoreUnavailable, ChainMissing) as exc:
        fail(str(exc), 2)


@contextmanager
def sending_writes(settings: Settings, what: str, *, dry_run: bool = False) -> Iterator[None]:
    """Hold the writers' lease for the block (not for a dry run, which sends nothing): while a
    running ``serve`` or another command sends writes for this ledger, one line and exit 1."""
    if dry_run:
        yield
        return
    try:
        with store_errors(), writer_lease(settings, what=what):
            yield
    except ServiceError as exc:
        fail(str(exc), 1)


@contextmanager
def ledger_at(url: str, *, create: bool) -> Iterator[LedgerApp]:
    """The ledger at ``url``, open for the block; unless ``create``, it must exist already."""
    with store_errors():
        ledger = open_ledger(url, create=create)
    try:
        yield ledger
    finally:
        ledger.close()


@contextmanager
def connected(settings: Settings) -> Iterator[Connections]:
    """The ledger and both systems, open for the block; unusable settings, a bad URL or a
    refused login are one line and exit code 2."""
    try:
        with store_errors(), connections(settings) as conn:
            yield conn
    except SettingsError as exc:
        fail(str(exc), 2)
    except (SalesforceAuthError, IntercomAuthError) as exc:
        fail(str(exc), 2)


def read_config(file: Path) -> SyncConfig:
    """The configuration in ``file``; unreadable is exit code 2, refused is :func:`refuse`."""
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{file}: no such file", 2)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{file}: cannot read it ({exc})", 2)
    try:
        return parse_config(text)
    except ConfigError as exc:
        refuse(file, exc.problems)


def refuse(file: Path, problems: tuple[ConfigProblem, ...] | list[ConfigProblem]) -> NoReturn:
    """Print every problem of a refused configuration and exit with code 1."""
    err = Console(stderr=True, highlight=False)
    err.print(
        f"[bold red]{escape(str(file))}: configuration refused[/] ({len(problems)} problem(s))"
    )
    for p in problems:
        err.print(f"  [red]✗[/] {escape(p.where)}: [bold]{escape(p.field)}[/]: {escape(p.reason)}")
    raise typer.Exit(1)


def requested_by() -> str:
    """Who runs this command, for the ledger's record of a replay or backfill."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


@contextmanager
def progress_bar(label: str) -> Iterator[tuple[Progress, TaskID]]:
    """A transient progress bar on stderr (label, bar, done of total, time left) and its task;
    the total is unknown until the caller sets it."""
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        yield progress, progress.add_task(label, total=None)


def task_bars(out: Console) -> Progress:
    """Progress bars that stay on ``out`` (description, bar, done of total, time taken)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    )


def render_report(report: CycleReport, out: Console) -> None:
    """One cycle's report, as a short table."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="sync cycle")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("changes recorded", report.facts_ingested),
        ("lookups", report.lookups),
        *(
            (("companies read again (same-second changes)", report.reread),)
            if report.reread
            else ()
        ),
        ("mappings made", report.mappings_made),
        ("mappings ended", report.mappings_ended),
        ("writes planned", report.writes_planned),
        ("writes applied", report.writes_applied),
        ("writes failed", report.writes_failed),
        ("echoes of our writes", report.echoes),
        *((f"skipped: {rule}", n) for rule, n in sorted(report.skipped_by_rule.items())),
    ]
    for name, count in rows:
        table.add_row(name, str(count))
    out.print(table)
    if report.paused:
        out.print(f"[yellow]{escape(report.paused)}[/]")
    if report.resync_deferred:
        out.print("[yellow]a resync of Salesforce accounts waits for the API budget[/]")
    for f in report.failures:
        again = "will retry" if f.retryable else "failed for good"
        out.print(
            f"[red]✗[/] {f.system} {f.record_id} {f.planned_write.field}: {escape(f.error)} "
            f"({again})"
        )
    for o in report.overwrites:
        out.print(f"overwrite {o.system} {o.record_id} {o.field}: {o.before!r} → {o.after!r}")
