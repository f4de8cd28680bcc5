"""The webhook intake's group commit: one notification the ledger cannot keep costs only its
own delivery (answered with an error, so Intercom delivers it again), not the whole batch."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable

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
