"""CLI commands for the replay features; ``register`` adds them to the ``syncledger`` app.

* ``syncledger replay`` — replay recorded history into a Salesforce sandbox org
  (:mod:`adapters.sync.replay`), dry run first;
* ``syncledger whatif identifier FIELD`` — what a new identifier field would do to the mappings
  (:mod:`ledger.whatif`);
* ``syncledger backfill`` — map everything and sync every mapped attribute
  (:mod:`adapters.sync.backfill`).
"""

from __future__ import annotations

import csv
import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

SHOWN = 20


def _requested_by() -> str:
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):
        return "cli"


def _when(value: str | None, option: str) -> datetime | None:
    from adapters.cli.main import _fail

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        _fail(f"{option}: not an ISO date or date-time: {value!r} (e.g. 2026-01-31T09:00Z)", 2)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bar(out: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=False,
    )


@contextmanager
def _ledger_for(database_url: str | None) -> Iterator[Any]:
    from adapters.cli.main import _database_url, _ledger

    with _ledger(_database_url(database_url), create=False) as ledger:
        yield ledger


# --- replay --------------------------------------------------------------------------------


def replay(
    target_instance_url: Annotated[
        str, typer.Option(help="The sandbox org's instance URL (http(s)://host[:port]).")
    ],
    target_session_id: Annotated[
        str | None, typer.Option(help="A session id or access token for the sandbox org.")
    ] = None,
    target_username: Annotated[str | None, typer.Option(help="Or log in as this user.")] = None,
    target_password: Annotated[str | None, typer.Option(help="That user's password.")] = None,
    target_security_token: Annotated[
        str, typer.Option(help="That user's security token (if the org asks for one).")
    ] = "",
    from_: Annotated[
        str | None,
        typer.Option("--from", help="Replay facts recorded at or after this ISO time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Replay facts recorded before this ISO time.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="A proposed configuration (TOML); default: the one in force."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and report; write nothing to the target.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write the plan to this .json or .csv file.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Resume this run (see `syncledger events`).")
    ] = None,
    target_daily_allocation: Annotated[
        int | None,
        typer.Option(min=1, help="This replay's share of the sandbox's daily API calls."),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="The production ledger.")
    ] = None,
) -> None:
    """Replay recorded history into a Salesforce sandbox org, under the configuration in force
    or a proposed one.

    Before anything it checks that the target is a sandbox on SYNCLEDGER_REPLAY_ALLOWED_ORGS.
    Interrupted, run the same command again (or --resume RUN_ID): it continues where it
    stopped and never writes a value twice. Salesforce → Intercom values are reported only.
    """
    from adapters.cli.main import _fail, _settings

    if report is not None and report.suffix.lower() not in (".json", ".csv"):
        _fail(f"--report {report}: give a .json or .csv file", 2)
    from adapters.sync.replay import ReplayError, ReplayRequest, ReplayStopped

    config_text = None
    if config is not None:
        try:
            config_text = config.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"{config}: cannot read it ({exc})", 2)
    request = ReplayRequest(
        target_instance_url=target_instance_url,
        target_session_id=target_session_id,
        target_username=target_username,
        target_password=target_password,
        target_security_token=target_security_token,
        window_from=_when(from_, "--from"),
        window_until=_when(until, "--until"),
        config_text=config_text,
        config_source=str(config) if config is not None else "current",
        dry_run=dry_run,
        requested_by=_requested_by(),
        target_daily_allocation=target_daily_allocation,
    )
    settings = _settings()
    out = Console(highlight=False)
    try:
        _replay(request, settings, database_url, report, resume, out)
    except ReplayStopped as exc:
        _fail(str(exc), 3)
    except ReplayError as exc:
        _fail(str(exc), 1)


def _replay(
    request: Any, settings: Any, database_url: str | None, report: Path | None,
    resume: str | None, out: Console,
) -> None:  # fmt: skip
    from adapters.salesforce.client import SalesforceError
    from adapters.sync.replay import check_target, run_replay, target_accounts

    with target_accounts(request) as accounts:
        org = check_target(accounts, settings.replay_allowed_orgs, request.target_instance_url)
        out.print(f"[green]target org {org.org_id} is a sandbox on the allowlist[/]")
        with _ledger_for(database_url) as ledger, _bar(out) as bar:
            task = bar.add_task("replay", total=None, visible=False)

            def planned(p: Any, status: Any) -> None:
                if p is not None:
                    _render_plan(p, status, out)
                else:
                    out.print(f"resuming replay {status.run_id}")
                if report is not None and p is not None:
                    _write_report(report, p, status)
                    out.print(f"report written to {escape(str(report))}")
                if not status.started.dry_run:
                    bar.update(task, total=status.counts()["records"], visible=True)

            try:
                result = run_replay(
                    ledger,
                    accounts,
                    request,
                    org,
                    _intercom_attributes(settings, ledger),
                    resume=resume,
                    on_planned=planned,
                    progress=lambda n: bar.advance(task, n),
                )
            except SalesforceError as exc:
                from adapters.sync.replay import ReplayError

                raise ReplayError(f"the target org: {exc.message}") from None
    status = result.status
    if status.started.dry_run:
        out.print(f"dry run {status.run_id}: nothing was written to the target")
        return
    counts = status.counts()
    out.print(
        f"replay {status.run_id} {status.state}: {counts['records_applied']} record(s) hold "
        f"the planned values, {counts['records_failed']} refused, "
        f"{counts['api_calls']} API call(s)"
    )
    if counts["records_failed"]:
        raise typer.Exit(1)


def _intercom_attributes(settings: Any, ledger: Any) -> list[Any]:
    """Intercom's attribute catalog: live when Intercom is configured; else the sample
    catalog plus every attribute the configuration in force maps."""
    from adapters.intercom.client import IntercomCompanies
    from adapters.sync.fakes import catalog

    if settings.intercom_token is not None:
        with IntercomCompanies(
            settings.intercom_base_url, settings.intercom_token.get_secret_value()
        ) as companies:
            return list(companies.catalog())
    known = {a.name: a for a in catalog().intercom.values()}
    known.update({rm.intercom.name: rm.intercom for rm in ledger.config.mappings})
    return list(known.values())


def _render_plan(p: Any, status: Any, out: Console) -> None:
    plan = p.plan
    s = status.started
    out.print(
        f"replay {s.run_id}: {p.facts_replayed} recorded fact(s) re-derived under "
        f"{escape(s.config_source)} configuration (identifier {p.config.identifier.name}), "
        f"{p.facts_before} before the window built the starting state"
    )
    for warning in p.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="plan by field, outcome and rule")
    for name in ("system", "field", "outcome", "rule"):
        table.add_column(name)
    table.add_column("count", justify="right")
    for system, field_name, outcome, rule, n in plan.counts():
        table.add_row(system, field_name, outcome, rule or "-", str(n))
    out.print(table)
    summary = plan.summary()
    out.print(
        f"{summary['writes']} write(s) to {summary['records']} target record(s); "
        f"{summary['overwrites']} overwrite(s); mappings gained {summary['mappings_gained']}, "
        f"lost {summary['mappings_lost']} (vs production now); {summary['ties']} tied key(s) "
        "in the target"
    )
    for row in plan.overwrites[:SHOWN]:
        out.print(
            f"  overwrite {row.record_id} {row.field} (key {escape(row.key)}): "
            f"{escape(repr(row.before))} → {escape(repr(row.value))}"
        )
    if len(plan.overwrites) > SHOWN:
        out.print(f"  … and {len(plan.overwrites) - SHOWN} more (see --report)")


def _write_report(path: Path, p: Any, status: Any) -> None:
    plan = p.plan
    if path.suffix.lower() == ".json":
        body = {
            "run": status.to_dict(),
            "summary": plan.summary(),
            "counts": [
                {"system": s, "field": f, "outcome": o, "rule": r, "count": n}
                for s, f, o, r, n in plan.counts()
            ],
            "mappings_gained": [m.to_dict() for m in plan.gained],
            "mappings_lost": [m.to_dict() for m in plan.lost],
            "ties": plan.ties,
            "overwrites": [r.to_dict() for r in plan.overwrites],
            "rows": [r.to_dict() for r in plan.rows],
            "warnings": p.warnings,
        }
        path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")
        return
    columns = ["kind", "system", "key", "field", "mapping", "outcome", "rule", "record_id",
               "before", "after", "overwrite"]  # fmt: skip
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in plan.rows:
            writer.writerow(
                [
                    "value",
                    r.system,
                    r.key,
                    r.field,
                    r.mapping,
                    r.outcome,
                    r.rule,
                    r.record_id,
                    _cell(r.before),
                    _cell(r.value),
                    "yes" if r.is_overwrite else "",
                ]
            )
        for kind, rows in (("mapping gained", plan.gained), ("mapping lost", plan.lost)):
            for m in rows:
                writer.writerow(
                    [
                        kind,
                        "",
                        m.key,
                        "",
                        "",
                        "",
                        "",
                        m.salesforce_id,
                        "",
                        m.intercom_id,
                        "",
                    ]
                )


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value)


# --- whatif --------------------------------------------------------------------------------

whatif_app = typer.Typer(help="What a configuration change would do, before it is made.")


@whatif_app.command("identifier")
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
    from adapters.bootstrap import salesforce_accounts
    from adapters.cli.main import _fail, _settings
    from adapters.salesforce.client import SalesforceError
    from ledger.config import SyncConfig
    from ledger.validation import validate_config
    from ledger.whatif import accounts_from_state, identifier_what_if

    settings = _settings()
    out = Console(highlight=False)
    with _ledger_for(database_url) as ledger:
        sf = None
        try:
            if settings.salesforce_auth() is not None:
                sf = salesforce_accounts(settings)
            if refresh and sf is None:
                _fail("--refresh reads Salesforce: set SYNCLEDGER_SALESFORCE_* first", 2)
            catalog = _salesforce_catalog(sf)
            problems = validate_config(SyncConfig(identifier_field=field_name), catalog)
            if problems:
                _fail(f"{field_name} cannot be the identifier: {problems[0].reason}", 1)
            candidate = catalog.salesforce[field_name]
            if refresh:
                assert sf is not None
                sf.fields = (field_name,)
                with _bar(out) as bar:
                    bar.add_task(f"reading {field_name} of every account", total=None)
                    fresh = sf.poll(None).changes
                from ledger.whatif import AccountView

                accounts = [
                    AccountView(
                        c.salesforce_id,
                        c.fields.get(field_name),
                        c.system_modstamp,
                        c.is_person_account,
                    )
                    for c in fresh
                ]
            else:
                accounts = accounts_from_state(ledger.state, field_name)
        except SalesforceError as exc:
            _fail(f"Salesforce: {exc.message}", 2)
        finally:
            if sf is not None:
                sf.close()
        companies = dict(ledger.state.company_by_key)
        result = identifier_what_if(candidate, accounts, companies, ledger.mappings())
    _render_whatif(result, ledger.config.identifier.name, refresh, out)
    if output is not None:
        output.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")


def _salesforce_catalog(sf: Any) -> Any:
    from adapters.sync.fakes import catalog
    from ledger.catalog import FieldCatalog

    if sf is None:
        Console(stderr=True, highlight=False).print(
            "[dim]no SYNCLEDGER_SALESFORCE_* settings: checking the field against the "
            "simulators' sample catalog[/]"
        )
        return catalog()
    return FieldCatalog.of(sf.describe(), ())


def _render_whatif(result: Any, current: str, refreshed: bool, out: Console) -> None:
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


# --- backfill --------------------------------------------------------------------------------


def backfill(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Read and decide, record and write nothing.")
    ] = False,
) -> None:
    """Read every account and company, map them all and sync every mapped attribute under
    the rules; bulk work (pauses at 40 % of the API allocation), resumable.

    Settings come from SYNCLEDGER_* environment variables, like `syncledger sync`.
    """
    from adapters.cli.main import _connected, _fail, _settings, render_report
    from adapters.intercom.client import IntercomError
    from adapters.salesforce.client import SalesforceError
    from adapters.sync.backfill import BackfillPaused, run_backfill

    settings = _settings()
    out = Console(highlight=False)
    with _connected(settings) as conn, _bar(out) as bar:
        conn.follow_config()
        if conn.app.config.version == 0:
            _fail("no configuration is in force; apply one first (syncledger config apply)", 1)
        tasks: dict[str, Any] = {}

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
                requested_by=_requested_by(),
                progress=progress,
            )
        except BackfillPaused as exc:
            _fail(str(exc), 3)
        except (SalesforceError, IntercomError) as exc:
            _fail(f"the backfill stopped: {exc}; nothing is lost, run it again to resume", 1)
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(replay)
    app.add_typer(whatif_app, name="whatif")
    app.command()(backfill)
