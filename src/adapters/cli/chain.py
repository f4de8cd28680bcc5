"""``syncledger audit verify`` walks the ledger's hash chain and names the first broken
position; ``syncledger audit init`` chains a ledger that has none, on purpose.

``register(app)`` adds the ``audit`` group to the ``syncledger`` app. Exit codes follow the CLI's:
0 the chain holds (or was made); 1 it does not (or the expected head is not in it, or init was
not confirmed); 2 the ledger cannot be opened.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError

from adapters.bootstrap import open_chain
from adapters.cli.common import DatabaseUrl, console, fail, ledger_url, progress_bar, store_errors
from adapters.store.chain import (
    ChainedRecorder,
    ChainReport,
    NoChainError,
    init_chain,
    verify_chain,
)
from adapters.store.database import safe_url


def _parse_head(head: str | None) -> bytes | None:
    if head is None:
        return None
    try:
        value = bytes.fromhex(head)
    except ValueError:
        value = b""
    if len(value) != 32:
        fail(f"--head {head!r} is not a chain head (64 hexadecimal digits)", 2)
    return value


def verify(
    database_url: DatabaseUrl = None,
    head: Annotated[
        str | None,
        typer.Option(
            "--head",
            help="A chain head printed by an earlier verify: it must still be in the chain, "
            "which proves nothing before it was rewritten.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Walk the hash chain over every stored event and name the first broken position."""
    url = ledger_url(database_url)
    expected = _parse_head(head)
    with _chained(url) as recorder, progress_bar("verifying") as (progress, task):
        try:
            report = verify_chain(
                recorder,
                expected_head=expected,
                on_start=lambda stop: progress.update(task, total=stop),
                on_progress=lambda position: progress.update(task, completed=position),
            )
        except NoChainError as exc:
            fail(f"{url}: {exc}", 2)
    _print(report, head)


@contextmanager
def _chained(url: str) -> Iterator[ChainedRecorder]:
    """The ledger's chained recorder for the block: a ledger that cannot be opened or read is
    one line and exit code 2."""
    try:
        with store_errors():
            factory, recorder = open_chain(url)
    except NoChainError as exc:
        fail(str(exc), 2)
    try:
        yield recorder
    except PersistenceError as exc:
        fail(f"cannot read the ledger at {safe_url(url)}: {exc}", 2)
    finally:
        factory.close()


def init(
    database_url: DatabaseUrl = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", help="Confirm: vouch for the events as they are now (no question asked)."
        ),
    ] = False,
) -> None:
    """Chain a ledger that holds events but no hash chain (it predates the chain, or its chain
    table is missing). The new chain vouches for every event as it is at this moment, so run
    'audit verify' first and know why the chain is missing; it says what it vouched for."""
    url = ledger_url(database_url)
    with _chained(url) as recorder:
        if recorder.chain_exists():
            console().print("the ledger is chained already: nothing to do (see 'audit verify')")
            return
        if not yes and not (
            sys.stdin.isatty()
            and typer.confirm("Vouch for every event in this ledger as it is now?", default=False)
        ):
            fail("not confirmed: nothing was chained (pass --yes to confirm)", 1)
        report = init_chain(recorder)
    assert report is not None
    message = (
        f"chained {report.verified} events as they are now (positions up to "
        f"{report.head_position}); chain head {report.head.hex()}. The chain vouches for them "
        "from this moment only: keep the head somewhere else and pass it to 'audit verify --head'"
    )
    logging.getLogger("syncledger").warning("audit init on %s: %s", safe_url(url), message)
    console().print(message, soft_wrap=True)


def _print(report: ChainReport, head: str | None) -> None:
    broken = report.broken
    if broken is not None:
        fail(
            f"chain broken at position {broken.position}: {broken.problem} ({broken.detail}); "
            f"{report.verified} events verified before it",
            1,
        )
    console().print(
        f"verified {report.verified} events, chain head {report.head.hex()}"
        + (f" (position {report.head_position})" if report.head_position else ""),
        soft_wrap=True,
    )
    if report.head_found is False:
        fail(
            f"the chain head {head} is not in the chain: the history before it was rewritten "
            "(or it belongs to another ledger)",
            1,
        )


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group (``audit verify``, ``audit init``) to ``app``."""
    audit = typer.Typer(help="Check the ledger's tamper evidence.", no_args_is_help=True)
    audit.command("verify")(verify)
    audit.command("init")(init)
    app.add_typer(audit, name="audit")
