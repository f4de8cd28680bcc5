"""Intake and writers under faults an operator meets, against ``syncledger serve`` as a real
process: a store held by another transaction for longer than a delivery waits, then normal load.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from adapters.simulators.intercom_webhooks import sign
from adapters.simulators.server import free_port
from ledger import events as ev
from tests.e2e.stack import SECRET, SYNCLEDGER, Stack, launch, stack, wait_for

__all__ = ["stack"]  # the fixture, re-exported for this module's tests

#: Longer than the 10 s a delivery waits for the store (adapters.http STORE_TIMEOUT).
HOLD_SECONDS = 12.0


def webhook(n: int) -> bytes:
    return json.dumps(
        {
            "type": "notification_event",
            "id": f"notif-{n}",
            "topic": "company.updated",
            "created_at": 1_700_000_000 + n,
            "data": {
                "type": "notification_event_data",
                "item": {
                    "type": "company",
                    "id": f"ic-{n}",
                    "company_id": f"K-{n}",
                    "name": f"Company {n}",
                    "updated_at": 1_700_000_000 + n,
                },
            },
        }
    ).encode()


def deliver(stack: Stack, body: bytes, timeout: float = 30.0) -> httpx.Response:
    signature = sign(body, SECRET)
    return httpx.post(
        f"{stack.service_url}/webhooks/intercom",
        content=body,
        headers={"X-Hub-Signature": signature, "Content-Type": "application/json"},
        timeout=timeout,
    )


@contextmanager
def store_held(database_url: str, seconds: float) -> Iterator[threading.Event]:
    """Another transaction holds the ledger's events table for ``seconds`` (SQLite: an
    exclusive write lock on the file; PostgreSQL: an ACCESS EXCLUSIVE lock on the table); the
    event is set once the lock is taken. Released by the end of the block at the latest."""
    taken, done = threading.Event(), threading.Event()
    url = make_url(database_url)

    def hold() -> None:
        if url.get_backend_name() == "sqlite":
            conn = sqlite3.connect(str(url.database), isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
        else:
            schema = url.query.get("schema") or "public"
            plain = url.set(drivername="postgresql").difference_update_query(["schema"])
            conn = psycopg.connect(plain.render_as_string(hide_password=False))  # type: ignore[assignment]
            row = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s",
                (schema, "%events"),
            ).fetchone()
            assert row is not None, "no events table"
            conn.execute(f'LOCK TABLE "{schema}"."{row[0]}" IN ACCESS EXCLUSIVE MODE')
        taken.set()
        done.wait(seconds)
        conn.rollback()
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10), "could not take the lock"
    try:
        yield taken
        thread.join(seconds + 5)
    finally:
        done.set()
        thread.join(5)


def test_intake_survives_a_store_held_longer_than_a_delivery_waits(
    stack: Stack, database_url: str
) -> None:
    """Found by an operator: after one delivery gave up waiting, the writer died and every
    later webhook was answered 503, forever, while /health said ok."""
    stack.start_service()
    with store_held(database_url, HOLD_SECONDS), ThreadPoolExecutor(4) as pool:
        during = list(pool.map(lambda n: deliver(stack, webhook(n)).status_code, range(4)))
    assert set(during) <= {200, 503}

    # normal load after the store is back: every delivery answered at once
    for n in range(4, 24):
        started = time.monotonic()
        answer = deliver(stack, webhook(n), timeout=8)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "accepted"
        assert time.monotonic() - started < 5
    # Intercom delivers again what was not answered 200: stored once, never twice
    for n, status in enumerate(during):
        again = deliver(stack, webhook(n))
        assert again.status_code == 200
        assert again.json()["status"] == ("duplicate" if status == 200 else again.json()["status"])
    ids = [e.notification_id for e in stack.events() if isinstance(e, ev.NotificationReceived)]
    assert sorted(ids) == sorted(f"notif-{n}" for n in range(24))
    health = stack.health()
    assert health["status"] == "ok"


def test_a_second_serve_on_the_same_sqlite_file_by_another_path_is_refused(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Found by an operator: the one-service guard was keyed by the path's text, so a second
    serve through a symlink ran beside the first and applied 929 of 3,835 writes twice.
    (SQLite's rule: PostgreSQL shares work between services by lease.)"""
    database = Path(str(make_url(sqlite_url).database))
    with launch(tmp_path, sqlite_url) as stack:
        stack.start_service()
        for link in ("symlink", "hardlink", "dotted path"):
            _second_serve_is_refused(stack, database, link)


def _second_serve_is_refused(stack: Stack, database: Path, link: str) -> None:
    other = database.with_name(f"{link.replace(' ', '-')}.db")
    if link == "symlink":
        other.symlink_to(database)
    elif link == "hardlink":
        other.hardlink_to(database)
    else:
        other = database.parent / "." / ".." / database.parent.name / database.name
    second = subprocess.run(
        [str(SYNCLEDGER), "serve", "--port", str(free_port())], capture_output=True, text=True,
        cwd=stack.tmp, env={**stack.env, "SYNCLEDGER_DATABASE_URL": f"sqlite:///{other}"},
        timeout=60,
    )  # fmt: skip
    assert second.returncode == 1, (link, second.stderr)
    assert "another syncledger service is already running" in second.stderr
    assert "Traceback" not in second.stderr


def test_commands_that_send_writes_wait_their_turn_beside_serve(
    stack: Stack, database_url: str
) -> None:
    """Found by an operator: `sync --once` beside `serve` did not take the service's lease and
    sent writes twice (45 field writes doubled on PostgreSQL in 8 runs, 83 on SQLite in 5)."""
    stack.env["SYNCLEDGER_CONFIG_FILE"] = "sync.toml"  # read when serve has no --config
    service = stack.start_service()
    sid = stack.create_account(Name="Acme", AccountNumber="K-1")
    iid = stack.upsert_company(company_id="K-1", name="Acme")
    wait_for(lambda: stack.company(iid)["name"] == "Acme", "the pair")
    for command in (("sync", "--once"), ("backfill",)):
        refused = stack.run(*command)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "another syncledger" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert stack.run("backfill", "--dry-run").returncode == 0  # sends nothing: no lease needed
    service.send_signal(signal.SIGTERM)
    service.wait(30)
    stack.update_account(sid, Name="Acme Corp")
    assert stack.run("sync", "--once").returncode == 0  # its turn now
    assert stack.company(iid)["name"] == "Acme Corp"


def test_a_change_made_while_serve_was_down_is_synced_after_restart(stack: Stack) -> None:
    """Found by an operator: Intercom gives up on a webhook after its retries; a company
    changed while serve was down, and not changed again, stayed unsynced until a backfill."""
    stack.env["SYNCLEDGER_CONFIG_FILE"] = "sync.toml"
    service = stack.start_service()
    sid = stack.create_account(Name="Acme", AccountNumber="K-1")
    stack.upsert_company(company_id="K-1", name="Acme", industry="Banking")
    wait_for(lambda: stack.account(sid)["Industry"] == "Banking", "the pair synced")
    service.send_signal(signal.SIGTERM)
    service.wait(30)
    stack.upsert_company(company_id="K-1", industry="Retail")
    time.sleep(3)  # the simulator gives up on the webhook after ~1.5 s of retries
    assert stack.account(sid)["Industry"] == "Banking"
    stack.start_service()
    wait_for(lambda: stack.account(sid)["Industry"] == "Retail", "the missed change synced")
    kept = [
        e.notification_id
        for e in stack.events()
        if isinstance(e, ev.NotificationReceived) and e.notification_id.startswith("reconcile:")
    ]
    assert kept, "reconciled, not backfilled"
    assert not any(type(e).__name__.startswith("Backfill") for e in stack.events())
