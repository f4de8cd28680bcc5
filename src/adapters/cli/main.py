"""The ``syncledger`` command line.

Commands that open a ledger take ``--database-url``, else ``SYNCLEDGER_DATABASE_URL``, else
``sqlite:///syncledger.db`` in the working directory (the demo has its own default file).
Every error a user can cause is one red line, never a traceback. Exit codes: 0 done; 1 the input
was read and refused (an invalid configuration, a ledger the demo may not use); 2 the command
names something unusable (a bad database URL, a missing file, a ledger that cannot be opened).

This module only builds the app: each command group lives in its own module
(:mod:`adapters.cli.config`, ``sync``, ``events``, ``simulate``, ``demo``, ``audit``, ``chain``,
``replay``, ``whatif``, ``backfill``) and shares :mod:`adapters.cli.common`.
"""

from __future__ import annotations

import typer

from adapters.cli import (
    audit,
    backfill,
    chain,
    config,
    demo,
    events,
    replay,
    simulate,
    sync,
    whatif,
)

app = typer.Typer(
    name="syncledger",
    help="Keep Salesforce Accounts and Intercom Companies in sync, with every change and "
    "decision recorded in an event-sourced ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# `--help` lists the commands, then the groups, each in the order they are added here.
config.register(app)
demo.register(app)
sync.register(app)
events.register(app)
simulate.register(app)
audit.register(app)
chain.register(app)
replay.register(app)
whatif.register(app)
backfill.register(app)


def main() -> None:
    """The ``syncledger`` console script."""
    app()
