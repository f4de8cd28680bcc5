"""What a fact changes: comparing a record's new values with those the ledger knows.

Pure functions shared by the triggers (:mod:`ledger.triggers`), which decide what a fact is
compared with and which fields it changed, and the settling of webhooks delivered out of order
(:mod:`ledger.settling`), which asks the same questions before anything is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any, TypeVar

from ledger.values import is_empty

#: Salesforce fields that change on every save and say nothing about the account's data.
SALESFORCE_SYSTEM_FIELDS = frozenset(
    {
        "Id",
        "attributes",
        "IsDeleted",
        "SystemModstamp",
        "LastModifiedDate",
        "LastModifiedById",
        "LastViewedDate",
        "LastReferencedDate",
        "LastActivityDate",
    }
)
#: Intercom attributes that change by themselves (activity counters, timestamps).
INTERCOM_VOLATILE_ATTRIBUTES = frozenset(
    {"updated_at", "last_request_at", "session_count", "user_count", "last_seen", "id", "type"}
)
#: The ``source`` of a notification whose values were read again before it was decided.
READ_AGAIN = "webhook+read"


def differs(a: Any, b: Any) -> bool:
    """Whether two values of one field differ (two empty values do not)."""
    if is_empty(a) and is_empty(b):
        return False
    return bool(a != b)


def changed_keys(
    before: dict[str, Any] | None, after: dict[str, Any], ignore: frozenset[str]
) -> list[str]:
    """Keys whose value differs between two snapshots (all non-empty keys if none before)."""
    if before is None:
        return sorted(k for k, v in after.items() if k not in ignore and not is_empty(v))
    keys = (set(before) | set(after)) - ignore
    return sorted(k for k in keys if differs(before.get(k), after.get(k)))


def agree(
    known: Mapping[str, Any], values: Mapping[str, Any], ignore: Set[str] = frozenset()
) -> bool:
    """Whether two states of a record agree on every field both hold, ``ignore`` aside."""
    common = (known.keys() & values.keys()) - ignore
    return not any(differs(known[k], values[k]) for k in common)


def is_echo(expected: Any, values: dict[str, Any], changed: list[str]) -> bool:
    """A change is an echo when every changed field now shows a value we wrote or are writing."""
    if not expected:
        return False
    matched = {f for f, v in expected.items() if not differs(values.get(f), v)}
    return bool(matched) and set(changed) <= matched


class Repeat:
    """Marks a fact that repeats what the ledger already holds."""


class Reread(Repeat):
    """Marks a fact that repeats what the ledger holds, with fields it did not read before."""


S = TypeVar("S", int, str)


def compared_with(
    is_read: bool,
    stamp: S,
    values: dict[str, Any],
    latest: tuple[S, Mapping[str, Any]],
    last_change: tuple[S, Mapping[str, Any] | None],
    *,
    same_identity: bool,
) -> dict[str, Any] | Repeat | None:
    """The state a new fact is compared with, or :class:`Repeat` if it says nothing new.

    A read is compared with the latest state known. A change (webhook, poll) is compared with
    the state of the last change that triggered: reads taken since then (a lookup, the read
    before a write) may already show a user's edit, and that edit must still trigger when its
    change arrives, even at a later stamp that also carries our own write. Only a record known
    through reads alone is compared with the latest read; one with no state known has no
    "before" (``None``).

    At an unchanged stamp, fields seen for the first time (the configuration now reads more
    fields) or no longer read are no change: such a fact is a :class:`Reread` when it agrees
    on every field both know.
    """
    if is_read or stamp > latest[0]:
        if stamp == latest[0] and same_identity:
            repeat = _repeats(latest[1], values)
            if repeat is not None:
                return repeat
        if not is_read and last_change[1] is not None:
            return dict(last_change[1])
        return dict(latest[1])
    change_stamp, change_values = last_change
    if change_values is None:
        return None
    if stamp == change_stamp and same_identity:
        repeat = _repeats(change_values, values)
        if (
            isinstance(repeat, Reread)
            and stamp == latest[0]
            and type(_repeats(latest[1], values)) is Repeat
        ):
            return Repeat()  # that re-read is recorded already
        if repeat is not None:
            return repeat
    return dict(change_values)


def _repeats(known: Mapping[str, Any], values: dict[str, Any]) -> Repeat | None:
    if not agree(known, values):
        return None
    return Reread() if values.keys() - known.keys() else Repeat()
