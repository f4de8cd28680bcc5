"""The ledger's webhook inbox: what a webhook's 2xx promises is kept until decided, once."""

from __future__ import annotations

import pytest

from adapters.sync.cycle import run_cycle
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger import events as ev
from ledger.facts import CompanyChange, CompanyRemoval
from tests.support import new_ledger


def change(iid: str, company_id: str, name: str, updated_at: int) -> CompanyChange:
    return CompanyChange(iid, company_id, {"name": name}, updated_at, kind="updated")


def test_received_notifications_wait_in_order_and_a_repeated_id_is_dropped() -> None:
    app = new_ledger()
    first = app.receive([("n1", change("i1", "k1", "A", 10)), ("n2", CompanyRemoval("i2"))])
    again = app.receive([("n1", change("i1", "k1", "A", 10)), ("n3", change("i3", "k3", "C", 5))])

    assert len(first.of_type(ev.NotificationReceived)) == 2
    assert [e.notification_id for e in again.of_type(ev.NotificationReceived)] == ["n3"]  # type: ignore[attr-defined]
    assert [n for n, _ in app.inbox()] == ["n1", "n2", "n3"]
    assert app.inbox()[0][1] == change("i1", "k1", "A", 10)
    assert app.inbox()[1][1] == CompanyRemoval("i2")
    assert app.rebuild().snapshot() == app.state.snapshot()


def test_a_cycle_decides_the_inbox_and_empties_it_in_the_same_transaction() -> None:
    app, sf, ic = new_ledger(), FakeSalesforce(), FakeIntercom()
    sf.create(AccountNumber="k1", Name="Acme")
    iid = ic.create("k1", {"name": "Old"}, notify=False)
    app.receive([("n1", CompanyChange(iid, "k1", ic.get(iid) or {}, 1, kind="created"))])

    report = run_cycle(app, sf, ic)

    assert report.mappings_made == 1 and app.inbox() == []
    changes = next(r for r in app.read_events() if isinstance(r[1], ev.CompanyCreated))[0]
    taken = next(p for p, e in app.read_events() if isinstance(e, ev.NotificationsTaken))
    # one transaction: the fact and the inbox's closing are both before its LedgerAdvanced
    heads = [p for p, e in app.read_events() if isinstance(e, ev.LedgerAdvanced)]
    assert next(h for h in heads if h > changes) > taken
    # received again (a late duplicate delivery): dropped, and decided nothing
    assert app.receive([("n1", CompanyChange(iid, "k1", {}, 1, kind="created"))]).count == 0


def test_a_cycle_that_fails_leaves_the_inbox_as_it_was() -> None:
    app, ic = new_ledger(), FakeIntercom()

    class Down(FakeSalesforce):
        def lookup(self, field: str, keys: object) -> list[object]:  # type: ignore[override]
            raise ConnectionError("Salesforce is down")

    app.receive([("n1", change("i1", "k1", "A", 10))])
    with pytest.raises(ConnectionError):
        run_cycle(app, Down(), ic)
    assert [n for n, _ in app.inbox()] == ["n1"]
    assert run_cycle(app, FakeSalesforce(), ic).facts_ingested == 1 and app.inbox() == []
