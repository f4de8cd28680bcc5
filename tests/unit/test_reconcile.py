"""Reconciliation: Intercom changes whose webhooks never arrived reach the ledger's inbox as
the webhooks would have, and the next cycle syncs them."""

from __future__ import annotations

from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from adapters.sync.reconcile import reconcile_intercom
from ledger.facts import CompanyChange, CompanyRemoval
from tests.support import new_ledger, sync_cycle


def test_changes_missed_while_down_are_kept_and_synced() -> None:
    app, sf, ic = new_ledger(), FakeSalesforce(), FakeIntercom()
    sid = sf.create(Name="Acme", AccountNumber="K-1")
    changed = ic.create("K-1", industry="Banking")
    gone = ic.create("K-2", industry="Banking")
    sync_cycle(app, sf, ic)
    before = sf.get(sid)
    assert before is not None and before["Industry"] == "Banking"
    # the service is down: Intercom's webhooks are lost (it gives up after its retries)
    ic.update(changed, industry="Retail")
    ic.delete(gone)
    new = ic.create("K-3", industry="Banking")
    initech = sf.create(Name="Initech", AccountNumber="K-3")
    ic.webhooks()  # never delivered

    found = reconcile_intercom(app, ic)

    assert (found.changed, found.removed, found.kept) == (2, 1, 3)
    kept = dict(app.inbox())
    assert kept[f"reconcile:{gone}:deleted"] == CompanyRemoval(gone, "K-2", source="reconcile")
    changes = {f.intercom_id: f for f in kept.values() if isinstance(f, CompanyChange)}
    updated, created = changes[changed], changes[new]
    assert (updated.kind, updated.source) == ("updated", "reconcile")
    assert (created.kind, created.source) == ("created", "reconcile")
    sync_cycle(app, sf, ic)
    account = sf.get(sid)
    assert account is not None and account["Industry"] == "Retail"  # no backfill needed
    initech_now = sf.get(initech)
    assert initech_now is not None and initech_now["Industry"] == "Banking"  # created: all synced
    # a second reconciliation (once our own writes' webhooks are in) finds nothing new
    sync_cycle(app, sf, ic)
    again = reconcile_intercom(app, ic)
    assert (again.changed, again.removed, again.kept) == (0, 0, 0)


def test_nothing_missed_keeps_nothing() -> None:
    app, sf, ic = new_ledger(), FakeSalesforce(), FakeIntercom()
    sf.create(Name="Acme", AccountNumber="K-1")
    ic.create("K-1", industry="Banking")
    sync_cycle(app, sf, ic)
    sync_cycle(app, sf, ic)  # delivers the echo of our own write of the name
    found = reconcile_intercom(app, ic)
    assert (found.scanned, found.changed, found.removed, found.kept) == (1, 0, 0, 0)
