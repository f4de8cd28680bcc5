"""Facts about companies and accounts, lookups, and the decisions about single records."""

from __future__ import annotations

from typing import Any

from ledger.events.base import LedgerEvent

# --- Intercom company facts ---------------------------------------------------------------


class CompanyFact(LedgerEvent):
    intercom_id: str
    company_id: str | None
    attributes: dict[str, Any]
    updated_at: int
    changed: list[str]
    source: str


class CompanyCreated(CompanyFact):
    """Intercom reported a new company (trigger: company created)."""


class CompanyUpdated(CompanyFact):
    """Intercom reported a changed company (trigger: company updated)."""


class CompanyObserved(CompanyFact):
    """We read a company (lookup answer, read before write): a fact, not a trigger."""


class CompanyDeleted(LedgerEvent):
    """Intercom reported a company deleted (trigger: company deleted)."""

    intercom_id: str
    company_id: str | None
    source: str


# --- Salesforce account facts -------------------------------------------------------------


class AccountFact(LedgerEvent):
    salesforce_id: str
    fields: dict[str, Any]
    system_modstamp: str
    is_person_account: bool
    changed: list[str]
    source: str


class AccountCreated(AccountFact):
    """Salesforce showed an account we had never seen (trigger: account created)."""


class AccountUpdated(AccountFact):
    """Salesforce showed a changed account (trigger: account updated)."""


class AccountIdentifierChanged(AccountFact):
    """Salesforce showed an account whose identifier value changed (trigger: key updated)."""

    identifier_field: str
    old_value: str | None
    new_value: str | None


class AccountObserved(AccountFact):
    """We read an account (lookup answer, read before write): a fact, not a trigger."""


class AccountDeleted(LedgerEvent):
    """Salesforce reported an account deleted (trigger: account deleted)."""

    salesforce_id: str
    deleted_at: str | None
    source: str


class LookupAnswered(LedgerEvent):
    """The other system answered "which records carry this key?" (``found`` = record ids)."""

    system: str
    field: str
    key: str
    found: list[str]


# --- decisions about records --------------------------------------------------------------


class RecordIgnored(LedgerEvent):
    """A record is never synced (person account, company without company_id)."""

    system: str
    record_id: str
    reason: str
    cause: str


class NotSynced(LedgerEvent):
    """A change was recorded but could not sync, and why (no counterpart yet, lost a tie, …)."""

    system: str
    record_id: str
    reason: str
    key: str | None
    cause: str


class EchoRecognised(LedgerEvent):
    """A change only reflected our own write; it triggers nothing."""

    system: str
    record_id: str
    fields: list[str]
    cause: str
