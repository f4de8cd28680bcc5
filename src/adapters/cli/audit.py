"""CLI commands for the audit features; ``register`` adds them to the ``syncledger`` app.

``syncledger projections rebuild``, ``syncledger history company|account ID``,
``syncledger overwrites``, ``syncledger explain``: the audit read API
(:mod:`projections.queries`) for people at a terminal. Exit codes follow the CLI's: 0 done,
1 nothing found to explain, 2 unusable input (a bad date, a ledger that cannot be opened).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from adapters.bootstrap import open_log, open_projector
from adapters.cli.common import DatabaseUrl, console, fail, ledger_url, progress_bar, store_errors
from projections.projector import ProjectionError, Projector
from projections.queries import MAX_LIMIT, Audit, AuditQueryError
from projections.views import Explanation, RecordHistory, WriteEntry


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class TextFormat(StrEnum):
    text = "text"
    json = "json"


Since = Annotated[
    str | None,
    typer.Option(help="Only from this instant on (ISO-8601; UTC when no offset is given)."),
]
Until = Annotated[str | None, typer.Option(help="Only before this instant (ISO-8601).")]

WRITE_COLUMNS = (
    "position", "at", "system", "record_id", "company_id", "field", "before", "value",
    "overwrite", "rules", "config_version", "trigger", "cause", "source_system",
    "source_record_id", "source_field", "write_id", "api_call",
)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    projections = typer.Typer(
        help="The audit read models (mappings, timelines, write log).", no_args_is_help=True
    )
    projections.command("rebuild")(rebuild)
    projections.command("status")(status)
    app.add_typer(projections, name="projections")
    history = typer.Typer(help="A record's timeline.", no_args_is_help=True)
    history.command("company")(history_company)
    history.command("account")(history_account)
    app.add_typer(history, name="history")
    app.command("overwrites")(overwrites)
    app.command("explain")(explain)


# --- opening ---------------------------------------------------------------------------------


@contextmanager
def _projector(database_url: str | None) -> Iterator[Projector]:
    url = ledger_url(database_url)
    with store_errors():
        # the notification log alone: a projector needs no ledger state folded in memory
        log = open_log(url)
    try:
        try:
            projector = open_projector(log, url)
        except ProjectionError as exc:
            fail(str(exc), 2)
        try:
            yield projector
        finally:
            projector.close()
    finally:
        log.close()


@contextmanager
def _audit(database_url: str | None) -> Iterator[Audit]:
    """The audit API on a projector caught up with the ledger (with a progress bar when far
    behind)."""
    with _projector(database_url) as projector:
        if projector.lag() > 10_000:
            _with_progress("catching up", projector.catch_up)
        yield Audit(projector)


def _with_progress(label: str, run: Callable[[Callable[[int, int], None]], int]) -> int:
    with progress_bar(label) as (progress, task):

        def show(applied: int, last: int) -> None:
            progress.update(task, completed=applied, total=last)

        return run(show)


def _instant(option: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO-8601 date or time (e.g. 2026-01-31T09:00Z)", 2)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


# --- projections ------------------------------------------------------------------------------


def rebuild(database_url: DatabaseUrl = None) -> None:
    """Rebuild the read models from the whole ledger (streamed in pages, constant memory)."""
    with _projector(database_url) as projector:
        started = datetime.now(tz=UTC)
        count = _with_progress("rebuilding", projector.rebuild)
        seconds = max((datetime.now(tz=UTC) - started).total_seconds(), 1e-6)
        console().print(
            f"rebuilt the projections from {count} event(s) in {seconds:.1f} s "
            f"({count / seconds:,.0f} events/s); position {projector.position}",
            soft_wrap=True,
        )


def status(database_url: DatabaseUrl = None) -> None:
    """Show the ledger position the read models reflect and how far behind they are."""
    with _projector(database_url) as projector:
        console().print(f"position {projector.position}, {projector.lag()} event(s) behind")


# --- history -----------------------------------------------------------------------------------


def history_company(
    intercom_id: Annotated[str, typer.Argument(help="The Intercom company's id.")],
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    output: Annotated[TextFormat, typer.Option("--format")] = TextFormat.text,
) -> None:
    """The timeline of an Intercom company: observations, mappings, writes, decisions."""
    _history("company", intercom_id, database_url, since, until, output)


def history_account(
    salesforce_id: Annotated[str, typer.Argument(help="The Salesforce Account Id.")],
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    output: Annotated[TextFormat, typer.Option("--format")] = TextFormat.text,
) -> None:
    """The timeline of a Salesforce account: observations, mappings, writes, decisions."""
    _history("account", salesforce_id, database_url, since, until, output)


def _history(
    kind: str,
    record_id: str,
    database_url: str | None,
    since: str | None,
    until: str | None,
    output: TextFormat,
) -> None:
    start, end = _instant("--since", since), _instant("--until", until)
    with _audit(database_url) as audit:
        try:
            if kind == "company":
                history = audit.history_company(record_id, since=start, until=end)
            else:
                history = audit.history_account(record_id, since=start, until=end)
        except AuditQueryError as exc:
            fail(str(exc), 2)
    if output is TextFormat.json:
        _json(history.model_dump(mode="json"))
        return
    _print_history(kind, history, console())


def _print_history(kind: str, history: RecordHistory, out: Console) -> None:
    name = "Intercom company" if kind == "company" else "Salesforce account"
    if not history.known:
        out.print(f"the ledger has never seen the {name} {escape(history.record_id)}")
        return
    state = " (deleted)" if history.deleted else ""
    key = f", company_id {history.company_id!r}" if history.company_id else ""
    out.print(f"[bold]{name} {escape(history.record_id)}[/]{escape(key)}{state}")
    for e in history.entries:
        version = "" if e.config_version is None else f"  [dim]config v{e.config_version}[/]"
        if e.cause_position is not None:
            cause = f"  [dim]← #{e.cause_position} {escape(e.cause_summary or '')}[/]"
        else:
            cause = f"  [dim]cause {escape(e.cause)}[/]" if e.cause else ""
        out.print(
            f"{e.position:>9}  {_when(e.at)}  {escape(e.summary)}{version}{cause}", soft_wrap=True
        )
    out.print(f"{len(history.entries)} entr{'y' if len(history.entries) == 1 else 'ies'}")


# --- overwrites --------------------------------------------------------------------------------


def overwrites(
    database_url: DatabaseUrl = None,
    since: Since = None,
    until: Until = None,
    field: Annotated[
        str | None, typer.Option(help="Only writes of this destination field.")
    ] = None,
    rule: Annotated[
        str | None,
        typer.Option(
            help="Only writes whose mapping had this rule flag: skip_if_source_empty, "
            "skip_if_destination_has_value, or none."
        ),
    ] = None,
    record: Annotated[
        str | None, typer.Option(help="Only writes to this record (Account Id or Intercom id).")
    ] = None,
    all_writes: Annotated[
        bool, typer.Option("--all-writes", help="Every applied write, not only overwrites.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Show at most this many.")] = None,
    output: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Applied writes that replaced a different non-empty value: when, from what, to what,
    under which rule and configuration version, caused by which event."""
    start, end = _instant("--since", since), _instant("--until", until)
    with _audit(database_url) as audit:
        try:
            found = list(_all_writes(audit, start, end, field, rule, record, all_writes, limit))
        except AuditQueryError as exc:
            fail(str(exc), 2)
    if output is Format.json:
        _json([w.model_dump(mode="json") for w in found])
    elif output is Format.csv:
        _write_csv(found)
    else:
        _print_writes(found, all_writes, console())


def _all_writes(
    audit: Audit,
    since: datetime | None,
    until: datetime | None,
    field: str | None,
    rule: str | None,
    record: str | None,
    all_writes: bool,
    limit: int | None,
) -> Iterator[WriteEntry]:
    """Every matching write, page by page."""
    after, left = 0, limit
    while left is None or left > 0:
        size = MAX_LIMIT if left is None else min(left, MAX_LIMIT)
        page = audit.writes(
            since,
            until,
            field,
            not all_writes,
            rule,
            record_id=record,
            after=after,
            limit=size,
        )
        yield from page
        if len(page) < size:
            return
        after = page[-1].position
        left = None if left is None else left - len(page)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False)


def _write_csv(writes: list[WriteEntry]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(WRITE_COLUMNS)
    for w in writes:
        data = w.model_dump()
        data["rules"] = "+".join(w.rules) or "none"
        data["overwrite"] = "yes" if w.overwrite else "no"
        out.writerow([_cell(data[c]) for c in WRITE_COLUMNS])


def _print_writes(writes: list[WriteEntry], all_writes: bool, out: Console) -> None:
    noun = "write" if all_writes else "overwrite"
    if not writes:
        out.print(f"no {noun}s")
        return
    for w in writes:
        flag = " [bold](overwrite)[/]" if w.overwrite and all_writes else ""
        out.print(
            f"{_when(w.at)}  {w.system} {escape(w.record_id)} ({escape(w.company_id)})  "
            f"{escape(w.field)}: {escape(repr(w.before))} → {escape(repr(w.value))}{flag}  "
            f"[dim]rule {escape('+'.join(w.rules) or 'none')}, config v{w.config_version}, "
            f"{escape(w.trigger)}, cause {escape(w.cause)}, position {w.position}[/]",
            soft_wrap=True,
        )
    out.print(f"{len(writes)} {noun}(s)")


# --- explain ------------------------------------------------------------------------------------


def explain(
    company_id: Annotated[
        str | None, typer.Option(help="The Intercom company_id (the identifier value).")
    ] = None,
    intercom_id: Annotated[str | None, typer.Option(help="The Intercom company's id.")] = None,
    account_id: Annotated[str | None, typer.Option(help="The Salesforce Account Id.")] = None,
    database_url: DatabaseUrl = None,
    output: Annotated[TextFormat, typer.Option("--format")] = TextFormat.text,
) -> None:
    """Why is (or isn't) this company or account synced? The causal chain from the ledger."""
    given = [v for v in (company_id, intercom_id, account_id) if v is not None]
    if len(given) != 1:
        fail("give exactly one of --company-id, --intercom-id, --account-id", 2)
    with _audit(database_url) as audit:
        try:
            answer = audit.explain(
                company_id=company_id, intercom_id=intercom_id, account_id=account_id
            )
        except AuditQueryError as exc:
            fail(str(exc), 2)
    if output is TextFormat.json:
        _json(answer.model_dump(mode="json"))
    else:
        _print_explanation(answer, console())
    if answer.status == "unknown":
        raise typer.Exit(1)


def _print_explanation(answer: Explanation, out: Console) -> None:
    subject = answer.record_id or answer.company_id or ""
    colour = "green" if answer.synced else "yellow"
    out.print(
        f"[bold]{answer.subject} {escape(subject)}[/]: [{colour}]{answer.status}[/]", soft_wrap=True
    )
    out.print(escape(answer.summary), soft_wrap=True)
    if answer.chain:
        out.print("because:")
        for e in answer.chain:
            version = "" if e.config_version is None else f" [config v{e.config_version}]"
            out.print(
                f"  {e.position:>8}  {_when(e.at)}  {escape(e.summary)}{version}", soft_wrap=True
            )
    for label, writes in (("pending", answer.pending_writes), ("failed", answer.failed_writes)):
        if writes:
            out.print(f"{label} writes:")
            for w in writes:
                error = f" ({escape(w.error)})" if w.error else ""
                out.print(
                    f"  {w.system} {w.record_id} {escape(w.field)} ← {escape(repr(w.value))}: "
                    f"{w.status}, {w.attempts} attempt(s){error}",
                    soft_wrap=True,
                )
