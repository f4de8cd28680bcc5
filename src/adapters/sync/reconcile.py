"""Reconciliation with Intercom: catch the changes whose webhooks never arrived.

Intercom gives up on a webhook after its retries; a company changed while the service was down
(or unreachable), and not changed again, would otherwise stay unsynced until someone runs a
backfill. :func:`reconcile_intercom` pages through every company (the scroll API, within the
rate limit the client paces itself by) and, for each one whose ``updated_at`` the ledger has not
seen, keeps a notification in the ledger's inbox, exactly as the webhook would have: a company
the ledger never saw as ``company.created``, a known one as ``company.updated``, with ``source``
``reconcile``. A company the ledger holds as live but the scroll no longer lists is read once;
if Intercom says it is gone, a removal is kept. The next cycle decides them all by the seed's
trigger tables, with the same ordering and echo rules as webhooks; their ids
(``reconcile:<company>:<updated_at>``) make a second reconciliation of the same change a
duplicate. Nothing is written here.

Salesforce needs no counterpart: every poll reads changes since the ledger's watermark, however
long the service was down, and when Salesforce's delete log no longer reaches back that far the
ledger records ``ResyncNeeded`` and reads every known account again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from itertools import islice

from adapters.sync.ports import CompanySystem
from ledger import events as ev
from ledger.application import LedgerApp
from ledger.facts import CompanyChange, CompanyKind, CompanyRemoval

#: Notifications kept per transaction.
BATCH = 500

Notification = tuple[str, CompanyChange | CompanyRemoval]


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation found: companies listed, and notifications kept (new ones)."""

    scanned: int
    changed: int
    removed: int
    kept: int


def reconcile_intercom(app: LedgerApp, intercom: CompanySystem) -> ReconcileReport:
    """Keep in the ledger's inbox every Intercom change the ledger has not heard of."""
    app.catch_up()
    known = dict(app.state.companies)
    seen: set[str] = set()
    counts = {"changed": 0, "removed": 0, "kept": 0}

    def changes() -> Iterator[Notification]:
        for company in intercom.every_company():
            seen.add(company.intercom_id)
            record = known.get(company.intercom_id)
            if record is not None and (record.deleted or company.updated_at <= record.updated_at):
                continue  # heard of already (or deleted for good: Intercom never reuses ids)
            counts["changed"] += 1
            kind: CompanyKind = "created" if record is None else "updated"
            fact = replace(company, kind=kind, source="reconcile")
            yield f"reconcile:{company.intercom_id}:{company.updated_at}", fact

    counts["kept"] += _keep(app, changes())
    missing = [iid for iid, record in known.items() if not record.deleted and iid not in seen]
    removals: list[Notification] = [
        (
            f"reconcile:{fact.intercom_id}:deleted",
            replace(fact, company_id=known[fact.intercom_id].company_id, source="reconcile"),
        )
        for fact in _read(intercom, missing)
        if isinstance(fact, CompanyRemoval)
    ]
    counts["removed"] = len(removals)
    counts["kept"] += _keep(app, removals)
    return ReconcileReport(len(seen), counts["changed"], counts["removed"], counts["kept"])


def _keep(app: LedgerApp, notifications: Iterable[Notification]) -> int:
    """Keep ``notifications`` in the inbox, a batch per transaction; how many were new."""
    kept = 0
    it = iter(notifications)
    while batch := list(islice(it, BATCH)):
        recorded = app.receive(batch)
        kept += sum(1 for e in recorded.events if isinstance(e, ev.NotificationReceived))
    return kept


def _read(intercom: CompanySystem, ids: list[str]) -> Iterator[CompanyChange | CompanyRemoval]:
    for start in range(0, len(ids), BATCH):
        yield from intercom.read(ids[start : start + BATCH])
