"""The Salesforce API budget: tiers like Intercom's, as a pure function of usage.

An integration gets a daily *allocation* of the org's API calls (its whole daily limit unless
configured lower). Bulk work (backfill, replay, a full resync) pauses at 40 % of the allocation;
event sync pauses at 80 %. Both resume by themselves once usage falls below the mark again
(Salesforce counts calls over a rolling 24 hours).
"""

from __future__ import annotations

from typing import Literal

Tier = Literal["normal", "pause_bulk", "pause_sync"]

#: Share of the allocation at which bulk work pauses.
BULK_SHARE = 0.4
#: Share of the allocation at which event sync pauses.
SYNC_SHARE = 0.8


def daily_budget(limit: int, allocation: int | None = None) -> int:
    """The calls we may spend today: our ``allocation``, capped by the org's daily ``limit``."""
    return min(allocation, limit) if allocation else limit


def budget_tier(used: int, limit: int, allocation: int | None = None) -> Tier:
    """The tier for ``used`` calls out of the org's daily ``limit`` and our ``allocation``.

    >>> budget_tier(3_000, 100_000, 10_000), budget_tier(8_000, 100_000, 10_000)
    ('normal', 'pause_sync')
    """
    budget = daily_budget(limit, allocation)
    if budget <= 0:
        return "pause_sync"
    share = used / budget
    if share >= SYNC_SHARE:
        return "pause_sync"
    if share >= BULK_SHARE:
        return "pause_bulk"
    return "normal"
