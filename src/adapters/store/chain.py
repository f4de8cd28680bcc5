"""Tamper evidence: every stored event carries a SHA-256 hash chained to the one before it.

The chain runs over the notification log in order. Link ``p`` (the event at position ``p``) is::

    hash(p) = sha256(hash(prev) | len+p | len+originator_id | len+version | len+topic | len+state)

where ``prev`` is the position before it in the log (``0`` and 32 zero bytes for the first
event) and every field is length-prefixed, so no two different events hash alike. Positions are
ordered but not gap-free: PostgreSQL spends sequence numbers on inserts that lose an optimistic
concurrency race, so each link also stores ``prev_id``, the position it is chained to.

The links live in a side table keyed by position (``<events table>_chain``) and are written by
the recorders below **inside the transaction that inserts the events, after the events are
inserted**: on PostgreSQL under the library's ``LOCK TABLE … IN EXCLUSIVE MODE`` that already
serialises writers, on SQLite under its database write lock. A crash therefore never leaves an
event without its link, and two writers cannot fork the chain.

The chain table is created with the ledger, while it has no events. It is never created over
events that are already there, except by an explicit ``syncledger audit init`` (:func:`init_chain`)
that says what it vouches for: otherwise dropping the table would make the next open vouch for
whatever the events hold by then. A ledger with events and no chain table refuses appends
(:class:`ChainMissing`) and ``verify`` reports it as tampering. A chain table that exists is
never filled in again, so removing links shows up as "hash missing".

A chain anyone can recompute proves nothing against someone who rewrites the whole database;
record the head that ``syncledger audit verify`` prints somewhere else and pass it back with
``--head``: verification then also proves that nothing before it was rewritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from ledger.errors import SyncLedgerError

GENESIS = bytes(32)
PAGE = 1000

EventRow = tuple[int, UUID | str, int, str, bytes]  # position, originator, version, topic, state
LinkRow = tuple[int, int, bytes]  # position, prev_id, hash


def link_hash(
    prev: bytes, position: int, originator_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    """The hash of the link at ``position``, chained to ``prev``."""
    parts = (
        str(position).encode(),
        str(originator_id).encode(),
        str(version).encode(),
        topic.encode(),
        bytes(state),
    )
    framed = b"".join(len(part).to_bytes(8, "big") + part for part in parts)
    return hashlib.sha256(prev + framed).digest()


def chain_links(prev_id: int, prev: bytes, rows: Sequence[EventRow]) -> list[LinkRow]:
    """Links for ``rows`` (in position order) following the link ``(prev_id, prev)``."""
    links: list[LinkRow] = []
    for row in rows:
        prev = link_hash(prev, *row)
        links.append((row[0], prev_id, prev))
        prev_id = row[0]
    return links


class ChainedRecorder(Protocol):
    """What verification reads from a chained store."""

    def chain_exists(self) -> bool: ...

    def vouch(self) -> None: ...

    def events_exist(self) -> bool: ...

    def chain_stop(self) -> int:
        """The highest position in the events or the chain table, read in one snapshot."""
        ...

    def event_rows(self, after: int, stop: int, limit: int) -> Sequence[EventRow]: ...

    def link_rows(self, after: int, stop: int, limit: int) -> Sequence[LinkRow]: ...


# --- verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain does not hold: ``problem`` is one of ``state changed``,
    ``hash changed``, ``row missing``, ``hash missing``; ``detail`` says more."""

    position: int
    problem: str
    detail: str


@dataclass(frozen=True)
class ChainReport:
    verified: int  # links that held
    head: bytes  # the hash of the last link that held
    head_position: int
    broken: ChainBreak | None
    head_found: bool | None = None  # whether the expected head occurs (None: none expected)


class NoChainError(SyncLedgerError):
    """There is no stored ledger to verify (kept in memory, or never created)."""


class ChainMissing(SyncLedgerError):
    """The ledger holds events but no hash chain: its history cannot be vouched for, so nothing
    is appended to it until someone who knows why runs ``syncledger audit init``."""

    def __init__(self) -> None:
        super().__init__(
            "this ledger holds events but has no hash chain (its chain table is missing: "
            "dropped, or the ledger predates the chain); nothing is appended to a ledger whose "
            "history cannot be vouched for. Check it with 'syncledger audit verify'; if you know "
            "why the chain is missing, 'syncledger audit init' chains the events as they are now"
        )


def _merged(
    recorder: ChainedRecorder, stop: int
) -> Iterator[tuple[int, EventRow | None, LinkRow | None]]:
    """Events and links side by side in position order, a page at a time."""

    def pages(read: Callable[[int, int, int], Sequence[Any]]) -> Iterator[Any]:
        after = 0
        while page := read(after, stop, PAGE):
            yield from page
            after = page[-1][0]

    events, links = pages(recorder.event_rows), pages(recorder.link_rows)
    event, link = next(events, None), next(links, None)
    while event is not None or link is not None:
        position = min(r[0] for r in (event, link) if r is not None)
        e = event if event is not None and event[0] == position else None
        k = link if link is not None and link[0] == position else None
        yield position, e, k
        if e is not None:
            event = next(events, None)
        if k is not None:
            link = next(links, None)


def init_chain(recorder: ChainedRecorder) -> ChainReport | None:
    """Chain the events stored now, for a ledger that has none (``syncledger audit init``);
    ``None`` if it is chained already (nothing is done). The report says what the new chain
    vouches for: every event up to its head, as the events are at this moment."""
    if not recorder.events_exist():
        raise NoChainError("there is no ledger here (no events table)")
    if recorder.chain_exists():
        return None
    recorder.vouch()
    return verify_chain(recorder)


def verify_chain(
    recorder: ChainedRecorder,
    *,
    expected_head: bytes | None = None,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ChainReport:
    """Walk the chain from position 1 in constant memory; report the first break.

    ``on_start(stop)`` is told the last position, ``on_progress(position)`` each position.
    Raises :class:`NoChainError` when there is no ledger at all."""
    if not recorder.events_exist():
        raise NoChainError("there is no ledger here (no events table)")
    if not recorder.chain_exists():
        detail = (
            "the ledger holds events but its chain table is missing: dropped, or the ledger "
            "predates the chain; nothing vouches for any event"
        )
        return ChainReport(0, GENESIS, 0, ChainBreak(1, "chain missing", detail))
    stop = recorder.chain_stop()
    if on_start is not None:
        on_start(stop)
    prev_id, prev, verified = 0, GENESIS, 0
    found = None if expected_head is None else False
    suspect: tuple[int, bytes] | None = None  # a link whose hash did not match, and its hash

    def report(broken: ChainBreak | None) -> ChainReport:
        return ChainReport(verified, prev, prev_id, broken, found)

    for position, event, link in _merged(recorder, stop):
        if on_progress is not None:
            on_progress(position)
        if suspect is not None:
            # Does the next link still chain to the suspect's stored hash? Then that hash is
            # original and the event changed; otherwise the hash itself was rewritten.
            if event is None or link is None:
                return report(_changed(suspect[0], event_changed=None))
            held = link[1] == suspect[0] and link[2] == link_hash(suspect[1], *event)
            return report(_changed(suspect[0], event_changed=held))
        if link is None:
            return report(
                ChainBreak(position, "hash missing", "the event has no link in the chain")
            )
        if event is None:
            return report(
                ChainBreak(position, "row missing", "the event was removed; its link remains")
            )
        if link[1] != prev_id:
            missing = link[1] if link[1] > prev_id else position
            return report(
                ChainBreak(
                    missing,
                    "row missing",
                    f"position {position} is chained to {link[1]}, but the log goes from "
                    f"{prev_id or 'its start'} to {position}",
                )
            )
        if link[2] != link_hash(prev, *event):
            suspect = (position, link[2])
            continue
        prev_id, prev, verified = position, link[2], verified + 1
        if expected_head is not None and prev == expected_head:
            found = True
    if suspect is not None:
        return report(_changed(suspect[0], event_changed=None))
    return report(None)


def _changed(position: int, *, event_changed: bool | None) -> ChainBreak:
    """``event_changed``: the next link tells which changed; ``None`` when it cannot."""
    if event_changed is None:
        return ChainBreak(
            position, "state changed", "the event or its stored hash differs from what was chained"
        )
    if event_changed:
        return ChainBreak(
            position,
            "state changed",
            "the stored event (originator id, version, topic or state) differs from what "
            "was chained",
        )
    return ChainBreak(position, "hash changed", "the stored link was rewritten")
