"""Backfill decisions: the bulk update the seed says Intercom's app lacks.

Triggers map records as they change; a backfill maps every identifier value at once and plans
*every* mapped attribute in both directions, under the same rules as a trigger (skip if the
source is empty, skip if the destination has a value, never a write of a value the destination
already holds). For each identifier value (``key``):

* the most recently updated live business account carrying it (ties: smallest Id) and the live
  company whose ``company_id`` it is are mapped, replacing a mapping held by another record
  (recorded as a switch, like a trigger would);
* a key with no company or no account waits, as it does for triggers (counted, not recorded);
* the mapped pair's Salesforce → Intercom and Intercom → Salesforce attributes are planned
  (trigger ``backfill``); the writer sends them like any other planned write.

The records must have been read (ingested as snapshots) first, so the decisions judge fresh
values. Everything is emitted through the :class:`~ledger.decisions.Decider` of one ledger
transaction, so a backfill decision is as replayable as a trigger's.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from ledger import events as ev
from ledger import ids
from ledger.config import Direction
from ledger.decisions import Decider

TRIGGER = "backfill"
#: The stream a preview (dry run) pretends to append to; its events are never stored.
PREVIEW_STREAM = ids.stream_id("backfill", "preview")


def backfill_stream(run_id: str) -> UUID:
    """The stream of one backfill run."""
    return ids.stream_id("backfill", run_id)


def decide_keys(d: Decider, run_stream: UUID, run_id: str, keys: Sequence[str]) -> int:
    """Map and plan every key of ``keys`` (sorted); returns how many are mapped after it.

    The :class:`~ledger.events.BackfillKeysDecided` event comes first and is the ``cause`` of
    every decision it leads to, so write ids are unique to this run and batch.
    """
    st = d.state
    if not keys:
        return 0
    note = d.emit(
        ev.BackfillKeysDecided(
            **d.stamp(run_stream), run_id=run_id, keys=list(keys), through=keys[-1]
        )
    )
    cause = note.ref
    mapped = 0
    for key in keys:
        winner = next(iter(st.candidates(key)), None)
        company = st.live_company(key)
        if winner is None or company is None:
            continue
        link = st.links.get(key)
        if link is not None and link.salesforce_id != winner.salesforce_id:
            d.unmap_pair(link, "superseded by a more recently updated duplicate", cause)
            link = None
        if link is not None and link.intercom_id != company.intercom_id:
            d.unmap_pair(link, "company replaced", cause)
            link = None
        holder = st.link_by_account.get(winner.salesforce_id)
        if link is None and holder is not None and holder != key:
            d.unmap_pair(st.links[holder], "key changed", cause)
        if link is None:
            link = d.map_pair(key, company.intercom_id, winner.salesforce_id, TRIGGER, cause)
        d.plan_sync(Direction.SALESFORCE_TO_INTERCOM, link, None, TRIGGER, cause)
        d.plan_sync(Direction.INTERCOM_TO_SALESFORCE, link, None, TRIGGER, cause)
        mapped += 1
    return mapped
