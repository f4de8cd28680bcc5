"""Tamper evidence on real stores: the hash chain holds, and raw SQL edits make verify fail."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from adapters.cli import chain as cli_chain
from adapters.cli.main import app as main_app
from adapters.store.chain import ChainMissing, init_chain, verify_chain
from adapters.store.database import ledger_env
from adapters.store.recorders import open_chained_recorder
from ledger.application import LedgerApp
from ledger.facts import AccountChange
from tests.conftest import Factory
from tests.support import CATALOG, STANDARD_CONFIG, FakeClock, ingest_concurrently


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    cli_chain.register(app)
    return app


def verify(cli: typer.Typer, url: str, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["audit", "verify", "--database-url", url, *extra])


def accounts(start: int, count: int) -> list[AccountChange]:
    stamp = "2026-01-01T00:01:00.000+0000"
    return [
        AccountChange(f"001{i:015d}", {"AccountNumber": f"k{i}", "Name": f"A{i}"}, stamp)
        for i in range(start, start + count)
    ]


class RawDb:
    """Plain SQL on the test's database, the way someone with database access would edit it."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            self.path = parsed.database or ""
            self.events, self.id = "stored_events", "rowid"
        else:
            self.conninfo = parsed.set(drivername="postgresql").difference_update_query(["schema"])
            self.schema = str(parsed.query["schema"])
            self.events, self.id = "syncledger_events", "notification_id"
        self.chain = f"{self.events}_chain"

    def execute(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite:
            with sqlite3.connect(self.path) as conn:
                return conn.execute(statement.replace("%s", "?"), params).fetchall()
        conninfo = self.conninfo.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.schema}")
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def has_chain(self) -> bool:
        if self.sqlite:
            query = "SELECT name FROM sqlite_master WHERE name = %s"
            return bool(self.execute(query, self.chain))
        query = "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s"
        return bool(self.execute(query, self.schema, self.chain))

    def positions(self) -> list[int]:
        return [r[0] for r in self.execute(f"SELECT {self.id} FROM {self.events} ORDER BY 1")]


def test_a_fresh_ledger_verifies(open_ledger: Factory, database_url: str, cli: typer.Typer) -> None:
    nothing = verify(cli, database_url)  # verify does not create a ledger
    assert nothing.exit_code == 2
    assert "there is no ledger here" in nothing.output or "does not exist" in nothing.output
    open_ledger()
    assert "verified 0 events" in verify(cli, database_url).output
    app = open_ledger()
    app.apply_config(STANDARD_CONFIG, CATALOG)
    app.ingest(accounts(0, 40))
    positions = RawDb(database_url).positions()
    result = verify(cli, database_url)
    assert result.exit_code == 0, result.output
    assert f"verified {len(positions)} events, chain head " in result.output
    assert f"(position {positions[-1]})" in result.output


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ("UPDATE {events} SET state = state || %s WHERE {id} = %s", "state changed"),
        ("UPDATE {events} SET topic = topic || %s WHERE {id} = %s", "state changed"),
        ("UPDATE {chain} SET hash = %s WHERE notification_id = %s", "hash changed"),
        ("DELETE FROM {events} WHERE {id} = %s", "row missing"),
        ("DELETE FROM {chain} WHERE notification_id = %s", "hash missing"),
    ],
)
def test_an_edited_row_makes_verify_fail_at_its_position(
    open_ledger: Factory, database_url: str, cli: typer.Typer, edit: str, problem: str
) -> None:
    app = open_ledger()
    app.apply_config(STANDARD_CONFIG, CATALOG)
    app.ingest(accounts(0, 20))
    app.ingest(accounts(20, 20))
    db = RawDb(database_url)
    victim = db.positions()[17]
    statement = edit.format(events=db.events, chain=db.chain, id=db.id)
    args: tuple[Any, ...] = (victim,)
    if "SET state" in statement:
        args = (b"x", victim)
    elif "SET topic" in statement:
        args = ("x", victim)
    elif "SET hash" in statement:
        args = (bytes(32), victim)
    db.execute(statement, *args)
    result = verify(cli, database_url)
    assert result.exit_code == 1, result.output
    assert f"chain broken at position {victim}: {problem}" in result.output
    assert "17 events verified before it" in result.output


def test_deleting_the_last_event_and_deleting_two_rows_are_found(
    open_ledger: Factory, database_url: str, cli: typer.Typer
) -> None:
    app = open_ledger()
    app.ingest(accounts(0, 10))
    db = RawDb(database_url)
    positions = db.positions()
    db.execute(f"DELETE FROM {db.events} WHERE {db.id} = %s", positions[-1])
    result = verify(cli, database_url)
    assert result.exit_code == 1
    assert f"position {positions[-1]}: row missing" in result.output
    # Both the event and its link gone: the next link still names the position it follows.
    for table, column in ((db.events, db.id), (db.chain, "notification_id")):
        db.execute(f"DELETE FROM {table} WHERE {column} = %s", positions[3])
    result = verify(cli, database_url)
    assert result.exit_code == 1
    assert f"position {positions[3]}: row missing" in result.output


def test_concurrent_writers_keep_one_valid_chain(open_ledger: Factory, database_url: str) -> None:
    apps = [open_ledger(), open_ledger()]
    apps[0].apply_config(STANDARD_CONFIG, CATALOG)

    def work(app: LedgerApp, offset: int) -> None:
        for batch in range(12):
            app.ingest(accounts(offset + batch * 5, 5))

    assert ingest_concurrently(apps, work) == []
    factory, recorder = open_chained_recorder(ledger_env(database_url), LedgerApp.name)
    try:
        report = verify_chain(recorder)
    finally:
        factory.close()
    positions = RawDb(database_url).positions()
    assert report.broken is None
    assert report.verified == len(positions) and report.head_position == positions[-1]
    apps[0].catch_up()
    assert len(apps[0].state.accounts) == 120


def test_a_ledger_from_before_the_chain_is_refused_until_chained_on_purpose(
    database_url: str, cli: typer.Typer
) -> None:
    """Was: chained on first open. That also re-vouched for edited history after someone
    dropped the chain table, so the chain is now made over existing events only on purpose."""
    env = ledger_env(database_url)
    del env["APPLICATION_RECORDER_TOPIC"]  # the recorder this project used before the chain
    old = LedgerApp(env=env, clock=FakeClock())
    old.ingest(accounts(0, 15))
    old.close()
    stored = RawDb(database_url).positions()
    before = verify(cli, database_url)
    assert before.exit_code == 1
    assert "position 1: chain missing" in before.output
    assert_refused(database_url)
    assert RawDb(database_url).positions() == stored
    assert not RawDb(database_url).has_chain()
    unconfirmed = CliRunner().invoke(cli, ["audit", "init", "--database-url", database_url])
    assert unconfirmed.exit_code == 1 and "nothing was chained" in unconfirmed.output
    assert not RawDb(database_url).has_chain()
    made = CliRunner().invoke(cli, ["audit", "init", "--database-url", database_url, "--yes"])
    assert made.exit_code == 0, made.output
    assert f"chained {len(stored)} events as they are now" in made.output
    factory, recorder = open_chained_recorder(
        ledger_env(database_url, create_tables=False), LedgerApp.name
    )
    try:
        report = verify_chain(recorder)
        assert report.broken is None and report.head_position == stored[-1]
        assert report.head.hex() in made.output
        assert init_chain(recorder) is None  # chained already: nothing is done
    finally:
        factory.close()
    app = LedgerApp(env=ledger_env(database_url), clock=FakeClock())
    try:
        app.ingest(accounts(15, 5))
    finally:
        app.close()
    result = verify(cli, database_url)
    assert result.exit_code == 0, result.output
    assert f"verified {len(RawDb(database_url).positions())} events" in result.output


def test_dropping_the_chain_table_does_not_re_vouch_for_edited_history(
    open_ledger: Factory, database_url: str, cli: typer.Typer
) -> None:
    """Found by an attacker: drop the chain table, edit an event, open the ledger normally: it
    was chained again over the edited events and verify said "verified"."""
    app = open_ledger()
    app.ingest(accounts(0, 10))
    app.close()
    raw = RawDb(database_url)
    raw.execute(f"DROP TABLE {raw.chain}")
    third = raw.positions()[2]
    # an edit the decoder still reads (the state's JSON with a trailing space)
    edited = "CAST(state || %s AS BLOB)" if raw.sqlite else "state || %s"
    raw.execute(f"UPDATE {raw.events} SET state = {edited} WHERE {raw.id} = %s", b" ", third)
    assert_refused(database_url)
    assert not raw.has_chain()
    result = verify(cli, database_url)
    assert result.exit_code == 1
    assert "position 1: chain missing" in result.output


def assert_refused(database_url: str) -> None:
    """Opening the ledger to write (as serve does) and appending through a reader both fail."""
    with pytest.raises(ChainMissing, match="has no hash chain"):
        LedgerApp(env=ledger_env(database_url), clock=FakeClock())
    reader = LedgerApp(env=ledger_env(database_url, create_tables=False), clock=FakeClock())
    try:
        with pytest.raises(ChainMissing):
            reader.ingest(accounts(100, 2))
    finally:
        reader.close()


def test_a_recorded_head_proves_the_history_before_it(
    open_ledger: Factory, database_url: str, cli: typer.Typer
) -> None:
    app = open_ledger()
    app.ingest(accounts(0, 5))
    first = verify(cli, database_url)
    head = first.output.split("chain head ")[1].split()[0]
    app.ingest(accounts(5, 5))
    assert verify(cli, database_url, "--head", head).exit_code == 0
    other = verify(cli, database_url, "--head", "ab" * 32)
    assert other.exit_code == 1 and "is not in the chain" in other.output
    assert verify(cli, database_url, "--head", "nothex").exit_code == 2


def test_unusable_ledgers_are_refused_in_one_line(cli: typer.Typer, tmp_path: Any) -> None:
    for url, message in (
        ("no way", "not a database URL"),
        (f"sqlite:///{tmp_path / 'absent.db'}", "does not exist"),
        ("memory://", "kept in memory"),
    ):
        result = verify(cli, url)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output


def test_serve_refuses_a_ledger_whose_chain_is_missing(
    open_ledger: Factory, database_url: str, tmp_path: Any
) -> None:
    app = open_ledger()
    app.ingest(accounts(0, 3))
    app.close()
    raw = RawDb(database_url)
    raw.execute(f"DROP TABLE {raw.chain}")
    env = {
        "SYNCLEDGER_DATABASE_URL": database_url,
        "SYNCLEDGER_SALESFORCE_INSTANCE_URL": "http://127.0.0.1:9",
        "SYNCLEDGER_SALESFORCE_SESSION_ID": "unused",
        "SYNCLEDGER_INTERCOM_BASE_URL": "http://127.0.0.1:9",
        "SYNCLEDGER_INTERCOM_TOKEN": "unused",
        "SYNCLEDGER_INTERCOM_CLIENT_SECRET": "unused",
    }
    for command in (["serve"], ["sync", "--once"]):
        result = CliRunner().invoke(main_app, command, env=env)
        assert result.exit_code == 2, result.output
        assert "has no hash chain" in result.output
        assert "Traceback" not in result.output
    assert not raw.has_chain()
