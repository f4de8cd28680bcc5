"""The webhook intake's group commit: one notification the ledger cannot keep costs only its
own delivery (answered with an error, so Intercom delivers it again), not the whole batch."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from adapters.intercom.webhooks import Notification
from adapters.service.intake import WebhookIntake
from ledger.application import LedgerApp, Recorded
from ledger.facts import CompanyChange, CompanyRemoval


class RefusingLedger(LedgerApp):
    """A ledger whose store refuses any transaction carrying the notification ``refused``
    (fault injection: a store error that only some rows trigger)."""

    refused = "poison"

    def receive(
        self, notifications: Iterable[tuple[str, CompanyChange | CompanyRemoval]]
    ) -> Recorded:
        batch = list(notifications)
        if any(notification_id == self.refused for notification_id, _ in batch):
            raise OSError("the store refused the row")
        return super().receive(batch)


def notification(notification_id: str, company_id: str) -> Notification:
    fact = CompanyChange(
        intercom_id=f"ic-{company_id}",
        company_id=company_id,
        attributes={"name": company_id},
        updated_at=1_700_000_000,
        kind="updated",
        source="webhook",
    )
    return Notification(notification_id, "company.updated", 1_700_000_000, fact)


def test_one_notification_the_ledger_refuses_does_not_lose_the_rest_of_its_batch() -> None:
    app = RefusingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    intake = WebhookIntake(app, "secret")
    jobs = [notification(f"n{i}", f"k{i}") for i in range(5)]
    jobs.insert(2, notification("poison", "kp"))
    futures: list[concurrent.futures.Future[str]] = [concurrent.futures.Future() for _ in jobs]
    intake._store(list(zip(jobs, futures, strict=True)))  # one group commit of six
    answers = {n.id: f for n, f in zip(jobs, futures, strict=True)}
    with pytest.raises(OSError):
        answers["poison"].result(timeout=0)
    assert [answers[f"n{i}"].result(timeout=0) for i in range(5)] == ["accepted"] * 5
    assert [notification_id for notification_id, _ in app.inbox()] == [f"n{i}" for i in range(5)]
    assert intake.kept == 5


class SlowLedger(LedgerApp):
    """A ledger whose store waits for ``go`` (a store held by a lock, or very slow)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.go = threading.Event()

    def receive(
        self, notifications: Iterable[tuple[str, CompanyChange | CompanyRemoval]]
    ) -> Recorded:
        batch = list(notifications)
        self.go.wait(10)
        return super().receive(batch)


def test_a_delivery_that_gave_up_waiting_does_not_kill_the_writer() -> None:
    """Found by an operator: a request that timed out cancelled its future; the writer then set
    a result on the cancelled future, raised InvalidStateError and died, and every later webhook
    was answered 503 forever."""
    app = SlowLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    intake = WebhookIntake(app, "secret")
    intake.start()
    try:
        slow = intake.keep(notification("n1", "k1"))
        slow.cancel()  # what asyncio.wait_for does to the request's future when it times out
        app.go.set()
        later = intake.keep(notification("n2", "k2"))
        assert later.result(timeout=5) == "accepted"
        assert intake.alive
        # the delivery that gave up was stored all the same: its redelivery is a duplicate
        assert [notification_id for notification_id, _ in app.inbox()] == ["n1", "n2"]
        assert intake.keep(notification("n1", "k1")).result(timeout=5) == "duplicate"
    finally:
        intake.stop()


def test_the_writer_survives_an_unexpected_error_and_answers_the_batch() -> None:
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    calls: list[int] = []

    def wake() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug after the commit")

    intake = WebhookIntake(app, "secret", on_kept=wake)
    intake.start()
    try:
        # stored before the error: answered as stored
        assert intake.keep(notification("n1", "k1")).result(timeout=5) == "accepted"
        assert intake.keep(notification("n2", "k2")).result(timeout=5) == "accepted"
        assert intake.alive
    finally:
        intake.stop()
