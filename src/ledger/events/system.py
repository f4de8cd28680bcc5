"""The ledger's own business: its configuration, its webhook inbox, the systems' API usage and
resyncs, and the head stream that closes every transaction.
"""

from __future__ import annotations

from typing import Any

from ledger.budget import Tier
from ledger.events.base import LedgerEvent
from ledger.facts import CompanyChange, CompanyRemoval, fact_from_dict

# --- configuration -------------------------------------------------------------------------


class ConfigurationApplied(LedgerEvent):
    """A validated configuration became the one in force (``config`` = ActiveConfig dict)."""

    version: int
    config: dict[str, Any]
    previous_identifier_field: str


# --- the webhook inbox ---------------------------------------------------------------------


class NotificationReceived(LedgerEvent):
    """An Intercom webhook was received and kept, not yet decided on (the ledger's inbox).

    ``fact`` is the company change or removal it reported (:func:`ledger.facts.fact_to_dict`).
    Recording it is what the webhook's 2xx answer promises: nothing received is lost.
    """

    notification_id: str
    fact: dict[str, Any]

    @property
    def reported(self) -> CompanyChange | CompanyRemoval:
        """The company change or removal ``fact`` holds."""
        return fact_from_dict(self.fact)


class NotificationsTaken(LedgerEvent):
    """Inbox notifications were decided on, in the same transaction as their facts."""

    notification_ids: list[str]


# --- the systems ---------------------------------------------------------------------------


class ApiUsageObserved(LedgerEvent):
    """A system's API usage, and the budget tier it puts the sync in (:mod:`ledger.budget`)."""

    system: str
    used: int
    limit: int
    allocation: int | None
    tier: Tier


class ResyncNeeded(LedgerEvent):
    """Deletions may have been missed; every known record of ``system`` must be read again."""

    system: str
    reason: str


class ResyncCompleted(LedgerEvent):
    """Every record of ``system`` the ledger knew as live was read again."""

    system: str
    records_read: int
    removed: int


# --- the head ------------------------------------------------------------------------------


class LedgerAdvanced(LedgerEvent):
    """Closes one ledger transaction; its version is the transaction's sequence number."""

    summary: str
    events: int
