"""The sample field catalog: the fields of the fakes' Salesforce org and Intercom workspace (what
``describe`` and ``data_attributes`` say of them), the value checks the fakes apply to writes
(:func:`value_problem`), and the moment the fakes' clocks start (:data:`EPOCH`). The CLI and the
HTTP API use it as the sample catalog when a system is not configured.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.catalog import FieldCatalog, IntercomAttribute, SalesforceField
from ledger.values import FLOAT_TYPES, STRING_TYPES

__all__ = [
    "EPOCH",
    "INDUSTRIES",
    "INTERCOM_ATTRIBUTES",
    "INTERCOM_KINDS",
    "SALESFORCE_FIELDS",
    "catalog",
    "value_problem",
]

#: 2026-01-01T00:00:00Z: the fakes' clocks start here and tick once per change.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

INDUSTRIES = ("Agriculture", "Banking", "Technology", "Retail", "Other")


def _sf(name: str, type_: str, **kw: Any) -> SalesforceField:
    return SalesforceField(name=name, type=type_, **kw)


def _ro(name: str, type_: str, **kw: Any) -> SalesforceField:
    return SalesforceField(name=name, type=type_, updateable=False, createable=False, **kw)


SALESFORCE_FIELDS = (
    _ro("Id", "id"),
    _sf("Name", "string", length=255, nillable=False),
    _sf("AccountNumber", "string", length=40),
    _sf("Site", "string", length=80),
    _sf("Website", "url", length=255),
    _sf("Industry", "picklist", picklist_values=INDUSTRIES, restricted_picklist=True),
    _sf("NumberOfEmployees", "int"),
    _sf("AnnualRevenue", "currency"),
    _sf("Phone", "phone", length=40),
    _sf("Description", "textarea", length=32000),
    _ro("BillingAddress", "address"),
    _sf("BillingCity", "string", length=40, compound_field_name="BillingAddress"),
    _ro("IsPersonAccount", "boolean"),
    _ro("SystemModstamp", "datetime"),
    _sf("Plan__c", "string", length=80),
    _sf("Health_Score__c", "double"),
    _sf("Seats__c", "int"),
    _sf("Is_Customer__c", "boolean"),
    _sf("Renewal_Date__c", "date"),
    _ro("Tier__c", "string", calculated=True),
    _sf("Tags__c", "multipicklist"),
)

INTERCOM_ATTRIBUTES = (
    IntercomAttribute("name", "string"),
    IntercomAttribute("company_id", "string", api_writable=False),
    IntercomAttribute("website", "string"),
    IntercomAttribute("industry", "string"),
    IntercomAttribute("size", "integer"),
    IntercomAttribute("monthly_spend", "float"),
    IntercomAttribute("remote_created_at", "date"),
    IntercomAttribute("created_at", "date", api_writable=False),
    IntercomAttribute("updated_at", "date", api_writable=False),
    IntercomAttribute("last_request_at", "date", api_writable=False),
    IntercomAttribute("session_count", "integer", api_writable=False),
    IntercomAttribute("custom_attributes.plan", "string", custom=True),
    IntercomAttribute("custom_attributes.health_score", "float", custom=True),
    IntercomAttribute("custom_attributes.seats", "integer", custom=True),
    IntercomAttribute("custom_attributes.is_customer", "boolean", custom=True),
    IntercomAttribute("custom_attributes.renewal_date", "date", custom=True),
    IntercomAttribute("custom_attributes.account_code", "string", custom=True),
)


def catalog() -> FieldCatalog:
    """The field catalogs of the two fakes (what ``describe`` and ``data_attributes`` say)."""
    return FieldCatalog.of(SALESFORCE_FIELDS, INTERCOM_ATTRIBUTES)


#: Intercom data types as :func:`value_problem` knows them (an Intercom date is Unix seconds).
INTERCOM_KINDS = {"date": "unix"}


def value_problem(value: Any, kind: str, length: int = 0) -> str | None:
    """Why ``value`` does not fit a field of type ``kind``, or ``None`` when it fits."""
    if value is None:
        return None
    if kind in STRING_TYPES | {"string", "url", "multipicklist"}:
        if not isinstance(value, str):
            return f"expected text, got {type(value).__name__}"
        if length and len(value) > length:
            return f"{len(value)} characters exceed the length of {length}"
        return None
    if kind in {"int", "integer"}:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected a whole number, got {value!r}"
    if kind in FLOAT_TYPES | {"float"}:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if kind == "date":  # a Salesforce date
        try:
            datetime.strptime(str(value), "%Y-%m-%d")
        except ValueError:
            return f"expected a date YYYY-MM-DD, got {value!r}"
        return None
    if kind == "datetime":
        return None if isinstance(value, str) else f"expected a date and time, got {value!r}"
    if kind == "unix":  # an Intercom date
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected Unix seconds, got {value!r}"
    return None
