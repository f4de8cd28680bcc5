"""Settling webhooks Intercom delivered out of order, before the ledger decides on them.

:func:`companies_in_doubt` names the companies whose notifications in a batch cannot be placed
in order; the caller reads those companies again and :func:`settle` makes their notifications
carry what the read shows. Pure: nothing here records anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from ledger.changes import INTERCOM_VOLATILE_ATTRIBUTES, READ_AGAIN, agree
from ledger.facts import CompanyChange, CompanyRemoval
from ledger.state import CompanyRecord, LedgerState


def companies_in_doubt(st: LedgerState, facts: Iterable[object]) -> list[str]:
    """Intercom companies whose notifications in ``facts`` the ledger cannot place in order.

    Intercom delivers webhooks out of order when it retries one, and stamps ``updated_at`` in
    whole seconds. A notification is placed when it is newer than anything known of the company,
    or when it shows what the ledger knows at its stamp: the last trigger's state (a repeat) or
    the latest read, our own writes aside (a change the read saw first; it triggers now). One
    older than the last trigger is dropped (what it changed was decided then), except a first
    ``company.created``, whose trigger syncs every attribute. Any other is in doubt:

    * same ``updated_at`` as a known state, other values: two changes within one second,
      and the stamp cannot say which is current;
    * between the last trigger and a later read: a change no trigger decided yet, whose values
      the read has already replaced;
    * from a company other than the one mapped for its ``company_id``: the mapped one may be
      gone, or this one (a late notification of a company since deleted and replaced).

    A company in doubt is read again and its notifications are decided on what the read shows
    (:func:`settle`). Notifications earlier in ``facts`` count as known.
    """
    known: dict[str, _Known] = {}
    doubt: list[str] = []
    for fact in facts:
        if isinstance(fact, CompanyRemoval):
            known[fact.intercom_id] = _Known(deleted=True)
            continue
        if not isinstance(fact, CompanyChange) or fact.kind == "snapshot":
            continue
        iid, stamp, values = fact.intercom_id, fact.updated_at, fact.attributes
        if iid in doubt:
            continue
        k = known.get(iid)
        if k is None:
            k = known[iid] = _Known.of(st.companies.get(iid))
        if k.deleted:
            continue  # the decider drops notifications of a deleted company
        link = st.links.get(fact.company_id) if fact.company_id else None
        if link is not None and link.intercom_id != iid:
            doubt.append(iid)
        elif k.latest is None or stamp > k.latest[0]:
            k.latest = k.trigger = (stamp, values)
            k.created |= fact.kind == "created"
        elif stamp < k.trigger[0] and (fact.kind != "created" or k.created):
            continue  # older than the last trigger: dropped
        elif (
            stamp == k.trigger[0]
            and k.trigger[1] is not None
            and agree(k.trigger[1], values, INTERCOM_VOLATILE_ATTRIBUTES)
        ):
            continue  # a repeat
        elif stamp == k.latest[0] and agree(
            k.latest[1], values, INTERCOM_VOLATILE_ATTRIBUTES | k.expected.keys()
        ):
            k.trigger = (stamp, values)  # the read saw it first
        else:
            doubt.append(iid)
    return doubt


@dataclass
class _Known:
    """What :func:`companies_in_doubt` knows of one company while it walks the facts."""

    latest: tuple[int, Mapping[str, Any]] | None = None
    trigger: tuple[int, Mapping[str, Any] | None] = (-1, None)
    expected: Mapping[str, Any] = field(default_factory=dict)
    created: bool = False
    deleted: bool = False

    @classmethod
    def of(cls, record: CompanyRecord | None) -> _Known:
        if record is None:
            return cls()
        return cls(
            latest=(record.updated_at, record.attributes),
            trigger=(record.trigger_stamp, record.baseline),
            expected=record.expected,
            created=record.created,
            deleted=record.deleted,
        )


F = TypeVar("F")


def settle(
    facts: Iterable[F], fresh: Iterable[CompanyChange | CompanyRemoval]
) -> list[F | CompanyChange | CompanyRemoval]:
    """``facts`` with every notification of a company read again (``fresh``, see
    :func:`companies_in_doubt`) carrying what the read shows: the company's values and stamp
    now (source :data:`READ_AGAIN`, the notification's own trigger kept), or its removal.

    Notifications that become the same fact are kept once (a ``company.created`` and a
    ``company.updated`` stay two: the created trigger syncs every attribute).
    """
    now = {f.intercom_id: f for f in fresh}
    settled: list[F | CompanyChange | CompanyRemoval] = []
    decided: list[CompanyChange | CompanyRemoval] = []
    for fact in facts:
        read = now.get(fact.intercom_id) if isinstance(fact, CompanyChange) else None
        if (
            read is None
            or not isinstance(fact, CompanyChange)
            or fact.kind == "snapshot"
            or (isinstance(read, CompanyChange) and read.updated_at < fact.updated_at)
        ):
            settled.append(fact)  # (a read older than the notification does not replace it)
            continue
        if isinstance(read, CompanyRemoval):
            replaced: CompanyChange | CompanyRemoval = replace(
                read, company_id=read.company_id or fact.company_id
            )
        else:
            replaced = replace(
                fact,
                company_id=read.company_id,
                attributes=read.attributes,
                updated_at=read.updated_at,
                source=READ_AGAIN,
            )
        if replaced not in decided:  # several notifications, one read: decided once
            decided.append(replaced)
            settled.append(replaced)
    return settled
