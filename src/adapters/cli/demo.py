"""``syncledger demo``: the real service between the two simulators, told a seeded story
(:mod:`adapters.demo`). ``register(app)`` adds the command to the ``syncledger`` app."""

from __future__ import annotations

from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError
from rich.markup import escape

from adapters.cli.common import console, fail, store_errors

DEMO_DATABASE_URL = "sqlite:///syncledger-demo.db"


def register(app: typer.Typer) -> None:
    """Add ``demo`` to ``app``."""
    app.command()(demo)


def demo(
    database_url: Annotated[
        str, typer.Option("--database-url", help="Where the demo ledger is stored.")
    ] = DEMO_DATABASE_URL,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running",
            help="Leave the simulators and the service up afterwards (until Ctrl-C) and print "
            "their URLs.",
        ),
    ] = False,
) -> None:
    """Run the sync service between simulated Salesforce and Intercom, tell it a story, and
    show what the ledger recorded.

    Starts both simulators (seeded with a few hundred records) and `syncledger serve` as child
    processes on free loopback ports; users on both sides change records through the
    simulators' REST APIs, the admin changes the configuration, and the service syncs.
    """
    # Imported here, not at the top: the demo (and the simulators it uses) load only for `demo`.
    from adapters.demo.errors import DemoError
    from adapters.demo.story import reset_demo_database, run_demo

    out = console()
    try:
        removed = reset_demo_database(database_url)
        if removed:
            out.print(f"Removed the previous demo ledger {escape(removed)}; starting afresh.")
        with store_errors():
            run_demo(database_url, out, keep_running=keep_running)
    except PersistenceError as exc:
        fail(f"cannot use the ledger at {database_url}: {exc}", 2)
    except DemoError as exc:
        fail(str(exc), 1)
    except KeyboardInterrupt:
        fail("interrupted; everything the demo started is stopped", 130)
    out.print("Stopped: no simulator or service left running.")
