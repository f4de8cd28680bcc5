"""Mappings made and ended between a company and an account."""

from __future__ import annotations

from ledger.events.base import LedgerEvent

# --- identity ----------------------------------------------------------------------------


class IdentityMapped(LedgerEvent):
    """A company and an account were matched on the identifier value ``company_id``."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    config_version: int
    trigger: str
    cause: str


class IdentityUnmapped(LedgerEvent):
    """A mapping ended; ``reason`` is one of :data:`UNMAP_REASONS`."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    reason: str
    cause: str


UNMAP_REASONS = (
    "company deleted",
    "account deleted",
    "key changed",
    "identifier field changed",
    "superseded by a more recently updated duplicate",
    "account is a person account",
    "company replaced",
)
