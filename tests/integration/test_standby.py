"""A standby service (one that does not hold the lease) keeps its view of the ledger current."""

from __future__ import annotations

import time

from adapters.service.worker import SyncWorker
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.facts import CompanyChange
from tests.conftest import Factory


class NeverLeader:
    """Another process holds the lease for the whole test."""

    def acquire(self) -> bool:
        return False

    def release(self) -> None:
        pass


def test_a_standby_catches_up_while_another_process_holds_the_lease(
    open_ledger: Factory,
) -> None:
    """Found by an operator: a standby serve on PostgreSQL reported inbox 3 for 300 s while
    the database had 0; it never caught up while it did not hold the lease."""
    leader, standby = open_ledger(), open_ledger()
    worker = SyncWorker(
        standby, FakeSalesforce(), FakeIntercom(), lease=NeverLeader(), idle_check=0.05
    )
    worker.start()
    try:
        fact = CompanyChange("ic-1", "K-1", {"name": "Acme"}, 1_700_000_000, kind="updated")
        leader.receive([("n1", fact)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(standby.state.inbox) != len(leader.state.inbox):
            time.sleep(0.05)
        assert len(standby.state.inbox) == len(leader.state.inbox) == 1
        assert standby.state.position == leader.state.position
        assert not worker.status.leader
    finally:
        worker.stop()
