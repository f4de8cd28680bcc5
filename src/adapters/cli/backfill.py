"""``syncledger backfill``: map everything and sync every mapped attribute
(:mod:`adapters.sync.backfill`). ``register(app)`` adds the command to the ``syncledger`` app.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import TaskID

from adapters.cli.common import (
    SHOWN,
    connected,
    console,
    fail,
    read_settings,
    render_report,
    requested_by,
    sending_writes,
    task_bars,
)
from adapters.intercom.client import IntercomError
from adapters.salesforce.errors import SalesforceError
from adapters.sync.backfill import BackfillPaused, run_backfill


def register(app: typer.Typer) -> None:
    """Add ``backfill`` to ``app``."""
    app.command()(backfill)


def backfill(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and decide, record and write nothing.")
    ] = False,
) -> None:
    """Read every account and company, map them all and sync every mapped attribute under
    the rules; bulk work (pauses at 40 % of the API allocation), resumable.

    Settings come from SYNCLEDGER_* environment variables, like `syncledger sync`.
    """
    settings = read_settings()
    out = console()
    with (
        sending_writes(settings, "backfill", dry_run=dry_run),
        connected(settings) as conn,
        task_bars(out) as bar,
    ):
        conn.follow_config()
        if conn.app.config.version == 0:
            fail("no configuration is in force; apply one first (syncledger config apply)", 1)
        tasks: dict[str, TaskID] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                label = "reading records" if step == "read" else "mapping and syncing keys"
                tasks[step] = bar.add_task(label, total=total or None)
            bar.update(tasks[step], completed=done, total=total or None)

        try:
            result = run_backfill(
                conn.app,
                conn.salesforce,
                conn.intercom,
                dry_run=dry_run,
                requested_by=requested_by(),
                progress=progress,
            )
        except BackfillPaused as exc:
            fail(str(exc), 3)
        except (SalesforceError, IntercomError) as exc:
            fail(f"the backfill stopped: {exc}; nothing is lost, run it again to resume", 1)
    verb = "would" if dry_run else "did"
    out.print(
        f"backfill {'(dry run) ' if dry_run else ''}{result.run_id}"
        f"{' resumed' if result.resumed else ''}: read {result.accounts} account(s) and "
        f"{result.companies} company(ies), {result.keys} key(s) to map ({verb}):"
    )
    render_report(result.cycles, out)
    for o in result.overwrites[:SHOWN]:
        out.print(
            f"  would overwrite {o['system']} {o['record_id']} {o['field']}: "
            f"{escape(repr(o['before']))} → {escape(repr(o['value']))}"
        )
