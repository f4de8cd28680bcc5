"""Configuration validation against the field catalogs, plus the file parser and value conversion.

The catalogs below are what a realistic org's ``sobjects/Account/describe`` and Intercom's
``GET /data_attributes?model=company`` report.
"""

from __future__ import annotations

import pytest

from ledger.catalog import FieldCatalog, IntercomAttribute, SalesforceField
from ledger.config import (
    ActiveConfig,
    AttributeMapping,
    ConfigError,
    ConfigProblem,
    Direction,
    SyncConfig,
    parse_config,
)
from ledger.validation import FREQUENTLY_CHANGING, resolve_config, validate_config
from ledger.values import Converted, Rejected, convert, key_of

S2I = Direction.SALESFORCE_TO_INTERCOM
I2S = Direction.INTERCOM_TO_SALESFORCE

INDUSTRIES = ("Agriculture", "Banking", "Education", "Retail", "Technology")

SALESFORCE_FIELDS = (
    SalesforceField("Id", "id", "Account ID", updateable=False, createable=False, nillable=False),
    SalesforceField("Name", "string", "Account Name", nillable=False, length=255),
    SalesforceField("AccountNumber", "string", "Account Number", length=40),
    SalesforceField("Site", "string", "Account Site", length=80),
    SalesforceField("Website", "url", "Website", length=255),
    SalesforceField(
        "Industry",
        "picklist",
        "Industry",
        length=255,
        picklist_values=INDUSTRIES,
        restricted_picklist=True,
    ),
    SalesforceField("NumberOfEmployees", "int", "Employees"),
    SalesforceField("AnnualRevenue", "currency", "Annual Revenue"),
    SalesforceField("Phone", "phone", "Account Phone", length=40),
    SalesforceField("Description", "textarea", "Account Description", length=32000),
    SalesforceField(
        "BillingAddress", "address", "Billing Address", updateable=False, createable=False
    ),
    SalesforceField(
        "BillingCity", "string", "Billing City", length=40, compound_field_name="BillingAddress"
    ),
    SalesforceField(
        "BillingPostalCode",
        "string",
        "Billing Zip/Postal Code",
        length=20,
        compound_field_name="BillingAddress",
    ),
    SalesforceField("ParentId", "reference", "Parent Account ID"),
    SalesforceField(
        "IsPersonAccount", "boolean", "Is Person Account", updateable=False, createable=False
    ),
    SalesforceField("CreatedDate", "datetime", "Created Date", updateable=False, createable=False),
    SalesforceField(
        "LastModifiedDate", "datetime", "Last Modified Date", updateable=False, createable=False
    ),
    SalesforceField(
        "SystemModstamp", "datetime", "System Modstamp", updateable=False, createable=False
    ),
    SalesforceField("Plan__c", "string", "Plan", length=80),
    SalesforceField("Health_Score__c", "double", "Health Score"),
    SalesforceField("Seats__c", "int", "Seats"),
    SalesforceField("Is_Customer__c", "boolean", "Is Customer", nillable=False),
    SalesforceField("Renewal_Date__c", "date", "Renewal Date"),
    SalesforceField(
        "Tier__c", "string", "Tier", calculated=True, updateable=False, createable=False
    ),
    SalesforceField(
        "Tags__c", "multipicklist", "Tags", picklist_values=("Enterprise", "SMB", "Partner")
    ),
)

INTERCOM_ATTRIBUTES = (
    IntercomAttribute("name", "string", label="Company name"),
    IntercomAttribute("company_id", "string", api_writable=False, label="Company ID"),
    IntercomAttribute("website", "string", label="Website"),
    IntercomAttribute("industry", "string", label="Industry"),
    IntercomAttribute("size", "integer", label="Company size"),
    IntercomAttribute("monthly_spend", "float", label="Monthly Spend"),
    IntercomAttribute("remote_created_at", "date", label="Company created at"),
    IntercomAttribute("created_at", "date", api_writable=False, label="First seen"),
    IntercomAttribute("updated_at", "date", api_writable=False, label="Last updated"),
    IntercomAttribute("last_request_at", "date", api_writable=False, label="Last seen"),
    IntercomAttribute("session_count", "integer", api_writable=False, label="Web sessions"),
    IntercomAttribute("user_count", "integer", api_writable=False, label="People"),
    IntercomAttribute("plan.name", "string", api_writable=False, label="Plan"),
    IntercomAttribute("custom_attributes.plan", "string", custom=True, label="plan"),
    IntercomAttribute("custom_attributes.health_score", "float", custom=True),
    IntercomAttribute("custom_attributes.seats", "integer", custom=True),
    IntercomAttribute("custom_attributes.is_customer", "boolean", custom=True),
    IntercomAttribute("custom_attributes.renewal_date", "date", custom=True),
    IntercomAttribute("custom_attributes.tags", "string", custom=True),
)

CATALOG = FieldCatalog.of(SALESFORCE_FIELDS, INTERCOM_ATTRIBUTES)
SF = CATALOG.salesforce
IC = CATALOG.intercom


def config(*mappings: tuple[str, str, Direction], identifier: str = "AccountNumber") -> SyncConfig:
    """A configuration from ``(intercom, salesforce, direction)`` triples."""
    return SyncConfig(identifier, tuple(AttributeMapping(i, s, d) for i, s, d in mappings))


def problems_of(
    *mappings: tuple[str, str, Direction], identifier: str = "AccountNumber"
) -> list[ConfigProblem]:
    return validate_config(config(*mappings, identifier=identifier), CATALOG)


def only_problem(
    *mappings: tuple[str, str, Direction], identifier: str = "AccountNumber"
) -> ConfigProblem:
    problems = problems_of(*mappings, identifier=identifier)
    assert len(problems) == 1, problems
    return problems[0]


# --- valid configurations -------------------------------------------------------------------

#: One mapping (or more) for every row of the type table that may be synced, in both directions.
EVERY_ROW = config(
    ("name", "Name", S2I),  # string
    ("website", "Website", S2I),  # url
    ("industry", "Industry", I2S),  # restricted picklist
    ("custom_attributes.plan", "Plan__c", I2S),  # string
    ("size", "NumberOfEmployees", S2I),  # int ⇄ integer
    ("custom_attributes.seats", "Seats__c", I2S),
    ("monthly_spend", "AnnualRevenue", S2I),  # currency ⇄ float
    ("custom_attributes.health_score", "Health_Score__c", I2S),  # double ⇄ float
    ("custom_attributes.is_customer", "Is_Customer__c", I2S),  # boolean
    ("remote_created_at", "CreatedDate", S2I),  # datetime ⇄ date
    ("custom_attributes.renewal_date", "Renewal_Date__c", I2S),  # date ⇄ date
    ("custom_attributes.tags", "Tags__c", S2I),  # multipicklist → string
)


def test_valid_config_covering_every_type_row_resolves() -> None:
    assert validate_config(EVERY_ROW, CATALOG) == []

    active = resolve_config(EVERY_ROW, CATALOG, version=7)

    assert isinstance(active, ActiveConfig)
    assert active.version == 7
    assert active.identifier == SF["AccountNumber"]
    assert [m.mapping for m in active.mappings] == list(EVERY_ROW.attributes)
    assert [(m.salesforce.type, m.intercom.data_type) for m in active.mappings] == [
        ("string", "string"),
        ("url", "string"),
        ("picklist", "string"),
        ("string", "string"),
        ("int", "integer"),
        ("int", "integer"),
        ("currency", "float"),
        ("double", "float"),
        ("boolean", "boolean"),
        ("datetime", "date"),
        ("date", "date"),
        ("multipicklist", "string"),
    ]
    # Decisions need the picklist values without asking Salesforce again.
    assert active.mappings[2].salesforce.picklist_values == INDUSTRIES
    assert active.as_sync_config() == EVERY_ROW
    assert ActiveConfig.from_dict(active.to_dict()) == active


@pytest.mark.parametrize("identifier", ["AccountNumber", "Site", "Seats__c", "Health_Score__c"])
def test_identifier_text_int_and_double_fields_are_accepted(identifier: str) -> None:
    active = resolve_config(config(identifier=identifier), CATALOG, version=1)
    assert active.identifier_field == identifier
    assert active.mappings == ()


def test_intercom_integer_into_salesforce_currency_is_allowed() -> None:
    assert problems_of(("size", "AnnualRevenue", I2S)) == []
    assert problems_of(("custom_attributes.seats", "Health_Score__c", I2S)) == []


def test_compound_component_field_can_be_a_destination() -> None:
    assert problems_of(("custom_attributes.plan", "BillingCity", I2S)) == []


def test_standard_attributes_in_both_directions_are_accepted() -> None:
    assert problems_of(("name", "Name", I2S), ("website", "Website", I2S)) == []


# --- the identifier -------------------------------------------------------------------------


def test_identifier_textarea_is_refused() -> None:
    p = only_problem(identifier="Description")
    assert p.where == "[identifier]"
    assert p.field == "Description"
    assert "Text Area fields cannot be the identifier; use a Text (string) field" in p.reason


def test_identifier_record_id_is_refused() -> None:
    p = only_problem(identifier="Id")
    assert (p.where, p.field) == ("[identifier]", "Id")
    assert "record Id cannot be the identifier" in p.reason


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [("Industry", "picklist"), ("Is_Customer__c", "boolean"), ("Renewal_Date__c", "date")],
)
def test_identifier_of_other_types_is_refused(identifier: str, kind: str) -> None:
    p = only_problem(identifier=identifier)
    assert (p.where, p.field) == ("[identifier]", identifier)
    assert f"a {kind} field cannot be the identifier" in p.reason


def test_identifier_formula_field_is_refused() -> None:
    p = only_problem(identifier="Tier__c")
    assert (p.where, p.field) == ("[identifier]", "Tier__c")
    assert "formula" in p.reason


def test_identifier_unknown_field_is_refused_with_a_suggestion() -> None:
    p = only_problem(identifier="Accountnumber")
    assert (p.where, p.field) == ("[identifier]", "Accountnumber")
    assert "not a field of the Salesforce Account object" in p.reason
    assert "did you mean AccountNumber?" in p.reason


# --- attribute mappings ---------------------------------------------------------------------


def test_unknown_fields_are_refused() -> None:
    problems = problems_of(
        ("custom_attributes.plan", "Plan_c", I2S),
        ("plan", "Plan__c", S2I),
    )
    assert [(p.where, p.field) for p in problems] == [
        ("[[attribute]] #1", "Plan_c"),
        ("[[attribute]] #2", "plan"),
    ]
    assert "not a field of the Salesforce Account object" in problems[0].reason
    assert "did you mean Plan__c?" in problems[0].reason
    assert "not a company data attribute in Intercom" in problems[1].reason
    assert "did you mean custom_attributes.plan?" in problems[1].reason


def test_unknown_field_is_reported_once_not_also_as_a_type_problem() -> None:
    # An int-named Salesforce field that does not exist next to a string attribute: only "unknown".
    p = only_problem(("custom_attributes.plan", "Employees__c", I2S))
    assert p.field == "Employees__c"
    assert "types incompatible" not in p.reason


@pytest.mark.parametrize("direction", [S2I, I2S])
def test_formula_field_is_refused(direction: Direction) -> None:
    # Refused in both directions, and not also as "not updateable".
    p = only_problem(("custom_attributes.plan", "Tier__c", direction))
    assert (p.where, p.field) == ("[[attribute]] #1", "Tier__c")
    assert "formula (calculated) fields cannot be synced in either direction" in p.reason


@pytest.mark.parametrize("direction", [S2I, I2S])
def test_compound_destination_is_refused(direction: Direction) -> None:
    p = only_problem(("custom_attributes.plan", "BillingAddress", direction))
    assert p.field == "BillingAddress"
    assert "compound (address) fields cannot be synced" in p.reason
    assert "map its component fields (e.g. BillingCity, BillingPostalCode) instead" in p.reason


def test_reference_field_is_refused() -> None:
    p = only_problem(("custom_attributes.plan", "ParentId", S2I))
    assert p.field == "ParentId"
    assert "reference fields cannot be synced" in p.reason


@pytest.mark.parametrize("attribute", sorted(FREQUENTLY_CHANGING))
def test_frequently_changing_attribute_is_refused(attribute: str) -> None:
    # Whether or not the catalog lists it, and without a second "not writable" problem.
    p = only_problem((attribute, "Renewal_Date__c", I2S))
    assert (p.where, p.field) == ("[[attribute]] #1", attribute)
    assert "changes too often to sync" in p.reason


def test_frequently_changing_attributes_are_the_documented_ones() -> None:
    assert (
        frozenset(
            {
                "last_request_at",
                "last_seen",
                "session_count",
                "user_count",
                "updated_at",
                "last_seen_at",
            }
        )
        == FREQUENTLY_CHANGING
    )


def test_field_used_twice_is_refused() -> None:
    problems = problems_of(
        ("custom_attributes.plan", "Plan__c", I2S),
        ("name", "Plan__c", S2I),
        ("custom_attributes.tags", "Plan__c", S2I),
    )
    assert [(p.where, p.field) for p in problems] == [
        ("[[attribute]] #2", "Plan__c"),
        ("[[attribute]] #3", "Plan__c"),
    ]
    assert all("already used in [[attribute]] #1" in p.reason for p in problems)


def test_attribute_used_twice_is_refused() -> None:
    p = only_problem(
        ("custom_attributes.plan", "Plan__c", I2S),
        ("custom_attributes.plan", "Site", S2I),
    )
    assert (p.where, p.field) == ("[[attribute]] #2", "custom_attributes.plan")
    assert "already used in [[attribute]] #1" in p.reason


def test_identifier_field_used_in_attribute_mapping_is_refused() -> None:
    p = only_problem(("custom_attributes.plan", "AccountNumber", S2I))
    assert (p.where, p.field) == ("[[attribute]] #1", "AccountNumber")
    assert "already used as the identifier" in p.reason


def test_company_id_in_attribute_mapping_is_refused() -> None:
    p = only_problem(("company_id", "Site", S2I))
    assert (p.where, p.field) == ("[[attribute]] #1", "company_id")
    assert "matched against the identifier field" in p.reason


@pytest.mark.parametrize(
    ("intercom", "salesforce", "sf_type", "ic_type"),
    [
        ("custom_attributes.plan", "Seats__c", "int", "string"),
        ("custom_attributes.renewal_date", "Is_Customer__c", "boolean", "date"),
        ("custom_attributes.health_score", "NumberOfEmployees", "int", "float"),
        ("custom_attributes.is_customer", "Plan__c", "string", "boolean"),
        ("custom_attributes.plan", "Id", "id", "string"),
    ],
)
def test_incompatible_types_are_refused(
    intercom: str, salesforce: str, sf_type: str, ic_type: str
) -> None:
    p = only_problem((intercom, salesforce, S2I))
    assert p.field == salesforce
    assert f"types incompatible: Salesforce {sf_type} vs Intercom {ic_type}" in p.reason


def test_multipicklist_only_salesforce_to_intercom() -> None:
    p = only_problem(("custom_attributes.tags", "Tags__c", I2S))
    assert p.field == "Tags__c"
    assert "multipicklist can only flow salesforce_to_intercom" in p.reason


def test_destination_not_writable_is_refused_intercom_to_salesforce() -> None:
    p = only_problem(("custom_attributes.renewal_date", "CreatedDate", I2S))
    assert (p.where, p.field) == ("[[attribute]] #1", "CreatedDate")
    assert "cannot be a destination" in p.reason
    assert "salesforce_to_intercom" in p.reason


def test_destination_not_writable_is_refused_salesforce_to_intercom() -> None:
    p = only_problem(("plan.name", "Plan__c", S2I))
    assert (p.where, p.field) == ("[[attribute]] #1", "plan.name")
    assert "cannot be a destination" in p.reason
    assert "intercom_to_salesforce" in p.reason


def test_not_writable_source_is_fine() -> None:
    assert problems_of(("plan.name", "Plan__c", I2S), ("created_at", "Renewal_Date__c", I2S)) == []
    assert problems_of(("remote_created_at", "CreatedDate", S2I)) == []


def test_record_id_is_never_a_destination() -> None:
    problems = problems_of(("custom_attributes.plan", "Id", I2S))
    assert any(p.field == "Id" and "cannot be a destination" in p.reason for p in problems)


def test_invalid_file_reports_every_problem_at_once() -> None:
    cfg = config(
        ("name", "Name", S2I),  # fine
        ("custom_attributes.plan", "Plan_c", I2S),  # unknown Salesforce field
        ("last_request_at", "Renewal_Date__c", I2S),  # frequently changing
        ("custom_attributes.tags", "Tags__c", I2S),  # multipicklist the wrong way
        ("custom_attributes.renewal_date", "BillingAddress", I2S),  # compound
        ("custom_attributes.seats", "Tier__c", S2I),  # formula
        ("custom_attributes.is_customer", "Name", I2S),  # Name again + boolean vs string
        ("plan.name", "Site", S2I),  # not writable in Intercom
        identifier="Description",  # textarea
    )

    problems = validate_config(cfg, CATALOG)

    assert [(p.where, p.field) for p in problems] == [
        ("[identifier]", "Description"),
        ("[[attribute]] #2", "Plan_c"),
        ("[[attribute]] #3", "last_request_at"),
        ("[[attribute]] #4", "Tags__c"),
        ("[[attribute]] #5", "BillingAddress"),
        ("[[attribute]] #6", "Tier__c"),
        ("[[attribute]] #7", "Name"),
        ("[[attribute]] #7", "Name"),
        ("[[attribute]] #8", "plan.name"),
    ]
    assert "already used in [[attribute]] #1" in problems[6].reason
    assert "types incompatible: Salesforce string vs Intercom boolean" in problems[7].reason
    with pytest.raises(ConfigError) as refused:
        resolve_config(cfg, CATALOG, version=2)
    assert list(refused.value.problems) == problems
    message = str(refused.value)
    assert "9 problem(s)" in message
    assert all(p.field in message for p in problems)


# --- parse_config: the file's shape ---------------------------------------------------------


def test_parse_config_reads_the_public_format() -> None:
    text = """
        [identifier]
        salesforce_field = "Site"

        [[attribute]]
        intercom = "custom_attributes.plan"
        salesforce = "Plan__c"
        direction = "intercom_to_salesforce"
        skip_if_destination_has_value = true
    """
    parsed = parse_config(text)
    assert parsed == SyncConfig(
        "Site",
        (AttributeMapping("custom_attributes.plan", "Plan__c", I2S, False, True),),
    )
    assert parse_config(parsed.to_toml()) == parsed
    assert parse_config("") == SyncConfig()


def test_parse_config_bad_toml_is_refused() -> None:
    with pytest.raises(ConfigError) as refused:
        parse_config('[identifier]\nsalesforce_field = "AccountNumber\n')
    assert len(refused.value.problems) == 1
    assert "not valid TOML" in refused.value.problems[0].reason


def test_parse_config_reports_every_shape_problem_at_once() -> None:
    text = """
        colour = "blue"

        [identifier]
        salesforce_field = "AccountNumber"
        match_case = true

        [[attribute]]
        intercom = "name"
        salesforce = "Name"
        direction = "both"

        [[attribute]]
        intercom = "custom_attributes.plan"
        salesforce = ""
        direction = "salesforce_to_intercom"
        skip_if_source_empty = "yes"
        skip_if_destination_has_value = 1
    """
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert [(p.where, p.field) for p in refused.value.problems] == [
        ("file", "colour"),
        ("[identifier]", "match_case"),
        ("[[attribute]] #1", "direction"),
        ("[[attribute]] #2", "salesforce"),
        ("[[attribute]] #2", "skip_if_source_empty"),
        ("[[attribute]] #2", "skip_if_destination_has_value"),
    ]
    assert "'both'" in refused.value.problems[2].reason


# --- value conversion -----------------------------------------------------------------------

MAY_1_2024 = 1714521600  # 2024-05-01T00:00:00Z


def test_salesforce_date_is_midnight_utc_in_unix_seconds() -> None:
    renewal, ic = SF["Renewal_Date__c"], IC["custom_attributes.renewal_date"]
    assert convert("2024-05-01", renewal, ic, S2I) == Converted(MAY_1_2024)
    assert convert(MAY_1_2024, renewal, ic, I2S) == Converted("2024-05-01")
    assert convert(MAY_1_2024 + 3600 * 13, renewal, ic, I2S) == Converted("2024-05-01")


def test_salesforce_datetime_round_trips_unix_seconds() -> None:
    created, ic = SF["CreatedDate"], IC["remote_created_at"]
    at = MAY_1_2024 + 12 * 3600 + 34 * 60 + 56
    assert convert("2024-05-01T12:34:56.000+0000", created, ic, S2I) == Converted(at)
    assert convert("2024-05-01T14:34:56.000+0200", created, ic, S2I) == Converted(at)
    assert convert(at, created, ic, I2S) == Converted("2024-05-01T12:34:56.000+0000")


def test_currency_and_float_convert_both_ways() -> None:
    revenue, spend = SF["AnnualRevenue"], IC["monthly_spend"]
    assert convert(1500000.5, revenue, spend, S2I) == Converted(1500000.5)
    assert convert(99.95, revenue, spend, I2S) == Converted(99.95)
    assert convert(250, revenue, IC["size"], I2S) == Converted(250.0)


def test_int_and_integer_convert_both_ways() -> None:
    employees, size = SF["NumberOfEmployees"], IC["size"]
    assert convert(250, employees, size, S2I) == Converted(250)
    assert convert(250, employees, size, I2S) == Converted(250)
    assert convert("250", employees, size, I2S) == Converted(250)
    assert convert(250.0, employees, size, I2S) == Converted(250)


def test_restricted_picklist_value_outside_the_list_is_rejected() -> None:
    industry, ic = SF["Industry"], IC["industry"]
    assert convert("Banking", industry, ic, I2S) == Converted("Banking")
    result = convert("Fintech", industry, ic, I2S)
    assert isinstance(result, Rejected)
    assert "restricted picklist" in result.reason


def test_string_longer_than_the_field_is_rejected() -> None:
    result = convert("x" * 81, SF["Plan__c"], IC["custom_attributes.plan"], I2S)
    assert isinstance(result, Rejected)
    assert "length of 80" in result.reason
    assert convert("x" * 80, SF["Plan__c"], IC["custom_attributes.plan"], I2S) == Converted(
        "x" * 80
    )


@pytest.mark.parametrize("value", ["abc", "12.5", True, [1]])
def test_unconvertible_value_is_rejected_never_raised(value: object) -> None:
    result = convert(value, SF["NumberOfEmployees"], IC["size"], I2S)
    assert isinstance(result, Rejected)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_empty_value_converts_to_none(value: object) -> None:
    assert convert(value, SF["NumberOfEmployees"], IC["size"], I2S) == Converted(None)
    assert convert(value, SF["Plan__c"], IC["custom_attributes.plan"], S2I) == Converted(None)


def test_multipicklist_goes_to_intercom_as_joined_text() -> None:
    tags = convert("Enterprise;Partner", SF["Tags__c"], IC["custom_attributes.tags"], S2I)
    assert tags == Converted("Enterprise;Partner")


def test_key_of_writes_whole_numbers_without_a_fraction() -> None:
    assert key_of(12345.0, "double") == "12345"
    assert key_of("12345.0", "double") == "12345"
    assert key_of(12345, "int") == "12345"
    assert key_of(12.5, "double") == "12.5"
    assert key_of("ACME-001", "string") == "ACME-001"
    assert key_of("", "string") is None
    assert key_of(None, "string") is None
