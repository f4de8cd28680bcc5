"""Test helpers: a fake clock, a realistic field catalog, and a ledger on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.application import LedgerApp
from ledger.catalog import FieldCatalog, IntercomAttribute, SalesforceField
from ledger.config import AttributeMapping, Direction, SyncConfig

S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE


class FakeClock:
    """A clock that advances one second per reading, from 2026-01-01 UTC."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def sf(name: str, type_: str, **kw: object) -> SalesforceField:
    return SalesforceField(name=name, type=type_, **kw)  # type: ignore[arg-type]


INDUSTRIES = ("Agriculture", "Banking", "Technology", "Retail", "Other")

CATALOG = FieldCatalog.of(
    [
        sf("Id", "id", updateable=False, createable=False),
        sf("Name", "string", length=255),
        sf("AccountNumber", "string", length=40),
        sf("Site", "string", length=80),
        sf("Website", "url", length=255),
        sf("Industry", "picklist", picklist_values=INDUSTRIES, restricted_picklist=True),
        sf("NumberOfEmployees", "int"),
        sf("AnnualRevenue", "currency"),
        sf("Phone", "phone", length=40),
        sf("Description", "textarea", length=32000),
        sf("BillingAddress", "address", updateable=False, createable=False),
        sf("BillingCity", "string", length=40, compound_field_name="BillingAddress"),
        sf("IsPersonAccount", "boolean", updateable=False, createable=False),
        sf("SystemModstamp", "datetime", updateable=False, createable=False),
        sf("Plan__c", "string", length=80),
        sf("Health_Score__c", "double"),
        sf("Seats__c", "int"),
        sf("Is_Customer__c", "boolean"),
        sf("Renewal_Date__c", "date"),
        sf("Tier__c", "string", calculated=True, updateable=False, createable=False),
        sf("Tags__c", "multipicklist"),
    ],
    [
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
    ],
)

#: Names flow Salesforce → Intercom; industry and size flow Intercom → Salesforce.
STANDARD_CONFIG = SyncConfig(
    identifier_field="AccountNumber",
    attributes=(
        AttributeMapping("name", "Name", S2I),
        AttributeMapping("custom_attributes.plan", "Plan__c", S2I, skip_if_source_empty=True),
        AttributeMapping("custom_attributes.renewal_date", "Renewal_Date__c", S2I),
        AttributeMapping("industry", "Industry", I2S),
        AttributeMapping("size", "NumberOfEmployees", I2S),
        AttributeMapping("website", "Website", I2S, skip_if_destination_has_value=True),
    ),
)


def new_ledger(
    clock: FakeClock | None = None, config: SyncConfig | None = STANDARD_CONFIG
) -> LedgerApp:
    """A ledger on the in-memory store with ``config`` applied."""
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock or FakeClock())
    if config is not None:
        app.apply_config(config, CATALOG)
    return app
