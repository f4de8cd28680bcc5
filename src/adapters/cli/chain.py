"""``syncledger audit verify``: walk the ledger's hash chain and name the first broken position.

``register(app)`` adds the ``audit`` group to the ``syncledger`` app. Exit codes follow the CLI's:
0 the chain holds; 1 it does not (or the expected head is not in it); 2 the ledger cannot be
opened.
"""

from __future__ import annotations

from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError

from adapters.bootstrap import open_chain
from adapters.cli.common import DatabaseUrl, console, fail, ledger_url, progress_bar, store_errors
from adapters.store.chain import ChainReport, NoChainError, verify_chain


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
    try:
        with store_errors():
            factory, recorder = open_chain(url)
    except NoChainError as exc:
        fail(str(exc), 2)
    try:
        with progress_bar("verifying") as (progress, task):
            report = verify_chain(
                recorder,
                expected_head=expected,
                on_start=lambda stop: progress.update(task, total=stop),
                on_progress=lambda position: progress.update(task, completed=position),
            )
    except NoChainError as exc:
        fail(f"{url}: {exc}", 2)
    except PersistenceError as exc:
        fail(f"cannot read the ledger at {url}: {exc}", 2)
    finally:
        factory.close()
    _print(report, head)


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
    """Add the ``audit`` group (``audit verify``) to ``app``."""
    audit = typer.Typer(help="Check the ledger's tamper evidence.", no_args_is_help=True)
    audit.command("verify")(verify)
    app.add_typer(audit, name="audit")
