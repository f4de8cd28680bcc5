"""The simulated org's schema: Account and Organization field metadata and describe documents.

Field metadata follows the REST describe shapes: lower-case ``type`` values, ``compoundFieldName``
on the BillingAddress components, ``calculated``/``calculatedFormula`` on the Tier__c formula.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from adapters.simulators.soql import ID_TYPES, TEXT_TYPES, Entity

# -- field metadata ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One field's describe metadata (the subset the simulator uses to behave)."""

    name: str
    label: str
    type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    unique: bool = False
    external_id: bool = False
    formula: str | None = None
    compound: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    filterable: bool = True
    sortable: bool = True
    defaulted: bool = False
    name_field: bool = False
    id_lookup: bool = False
    extra_type: str | None = None


_SOAP = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean", "int": "xsd:int"}
_SOAP |= {"double": "xsd:double", "currency": "xsd:double", "percent": "xsd:double"}
_SOAP |= {"date": "xsd:date", "datetime": "xsd:dateTime", "address": "urn:address"}

_INDUSTRY_NAMES = (
    "Agriculture, Apparel, Banking, Biotechnology, Chemicals, Communications, Construction, "
    "Consulting, Education, Electronics, Energy, Engineering, Entertainment, Environmental, "
    "Finance, Food & Beverage, Government, Healthcare, Hospitality, Insurance, Machinery, "
    "Manufacturing, Media, Not For Profit, Recreation, Retail, Shipping, Technology, "
    "Telecommunications, Transportation, Utilities, Other"
)
INDUSTRIES = tuple(_INDUSTRY_NAMES.split(", "))
ACCOUNT_TYPES = (
    "Prospect",
    "Customer - Direct",
    "Customer - Channel",
    "Channel Partner / Reseller",
    "Installation Partner",
    "Technology Partner",
    "Other",
)
TAGS = ("Beta", "Champion", "Churn Risk", "Partner", "Priority", "VIP")
TIER_FORMULA = 'IF(Seats__c >= 500, "Enterprise", IF(Seats__c >= 50, "Growth", "Starter"))'


def _system(name: str, label: str, ftype: str, length: int = 0, **kw: Any) -> FieldSpec:
    """A field only Salesforce itself writes (ids, flags, audit stamps)."""
    kw.setdefault("nillable", False)
    return FieldSpec(
        name, label, ftype, length, createable=False, updateable=False, defaulted=True, **kw
    )


def _derived(name: str, label: str, ftype: str, length: int = 0, **kw: Any) -> FieldSpec:
    """A read-only field computed from others (compound address, formula)."""
    return FieldSpec(name, label, ftype, length, createable=False, updateable=False, **kw)


def _billing(part: str, label: str, ftype: str = "string", length: int = 0, **kw: Any) -> FieldSpec:
    """A component of the compound BillingAddress."""
    return FieldSpec(
        f"Billing{part}", f"Billing {label}", ftype, length, compound="BillingAddress", **kw
    )


_F = FieldSpec
ACCOUNT_FIELDS: tuple[FieldSpec, ...] = (
    _system("Id", "Account ID", "id", 18, id_lookup=True),
    _system("IsDeleted", "Deleted", "boolean"),
    _F("Name", "Account Name", "string", 255, nillable=False, name_field=True, id_lookup=True),
    _F("Type", "Account Type", "picklist", 255, picklist=ACCOUNT_TYPES),
    _billing("Street", "Street", "textarea", 255, extra_type="plaintextarea"),
    _billing("City", "City", length=40),
    _billing("State", "State/Province", length=80),
    _billing("PostalCode", "Zip/Postal Code", length=20),
    _billing("Country", "Country", length=80),
    _billing("Latitude", "Latitude", "double", precision=18, scale=15),
    _billing("Longitude", "Longitude", "double", precision=18, scale=15),
    _derived("BillingAddress", "Billing Address", "address", filterable=False, sortable=False),
    _F("Phone", "Account Phone", "phone", 40),
    _F("Website", "Website", "url", 255),
    _F("Industry", "Industry", "picklist", 255, picklist=INDUSTRIES, restricted=True),
    _F("AnnualRevenue", "Annual Revenue", "currency", precision=18, scale=2),
    _F("NumberOfEmployees", "Employees", "int", digits=8),
    _F("AccountNumber", "Account Number", "string", 40),
    _F("Site", "Account Site", "string", 80),
    _F(
        "Description",
        "Account Description",
        "textarea",
        32000,
        extra_type="plaintextarea",
        filterable=False,
        sortable=False,
    ),
    _F(
        "OwnerId",
        "Owner ID",
        "reference",
        18,
        nillable=False,
        defaulted=True,
        reference_to=("User",),
        relationship="Owner",
    ),
    _system("IsPersonAccount", "Is Person Account", "boolean"),
    _system("CreatedDate", "Created Date", "datetime"),
    _system("LastModifiedDate", "Last Modified Date", "datetime"),
    _system("SystemModstamp", "System Modstamp", "datetime"),
    _F("Plan__c", "Plan", "string", 80),
    _F("Health_Score__c", "Health Score", "double", precision=5, scale=2),
    _F("Seats__c", "Seats", "int", digits=9),
    _F("Is_Customer__c", "Is Customer", "boolean", nillable=False, defaulted=True),
    _F("Renewal_Date__c", "Renewal Date", "date"),
    _F("Tags__c", "Tags", "multipicklist", 4099, picklist=TAGS),
    _derived("Tier__c", "Tier", "string", 1300, formula=TIER_FORMULA),
    _F(
        "Intercom_Company_Id__c",
        "Intercom Company Id",
        "string",
        255,
        external_id=True,
        id_lookup=True,
    ),
)
ORGANIZATION_FIELDS: tuple[FieldSpec, ...] = (
    _system("Id", "Organization ID", "id", 18),
    _derived("Name", "Name", "string", 80),
    _derived("IsSandbox", "Is Sandbox", "boolean"),
    _derived(
        "OrganizationType",
        "Edition",
        "picklist",
        40,
        picklist=("Developer Edition", "Enterprise Edition"),
    ),
    _derived("InstanceName", "Instance Name", "string", 5),
    _derived("NamespacePrefix", "Namespace Prefix", "string", 15),
    _derived("TimeZoneSidKey", "Locale", "picklist", 40, picklist=("GMT",)),
)
ACCOUNT = Entity("Account", {f.name.lower(): f for f in ACCOUNT_FIELDS})
ORGANIZATION = Entity("Organization", {f.name.lower(): f for f in ORGANIZATION_FIELDS})
ENTITIES = {"account": ACCOUNT, "organization": ORGANIZATION}
ACCOUNT_SPECS: dict[str, FieldSpec] = {f.name.lower(): f for f in ACCOUNT_FIELDS}
EXTERNAL_ID_FIELDS = tuple(f.name for f in ACCOUNT_FIELDS if f.external_id)
_ADDRESS_PARTS = {
    "city": "BillingCity",
    "country": "BillingCountry",
    "geocodeAccuracy": None,
    "latitude": "BillingLatitude",
    "longitude": "BillingLongitude",
    "postalCode": "BillingPostalCode",
    "state": "BillingState",
    "street": "BillingStreet",
}


def organization_row(org_id: str, sandbox: bool) -> dict[str, Any]:
    """The one Organization record (``is_sandbox()`` reads IsSandbox from it)."""
    return {
        "Id": org_id,
        "Name": "Syncledger Simulated Org",
        "IsSandbox": sandbox,
        "OrganizationType": "Developer Edition" if sandbox else "Enterprise Edition",
        "InstanceName": "SIM1",
        "NamespacePrefix": None,
        "TimeZoneSidKey": "GMT",
    }


def tier(seats: Any) -> str:
    """The Tier__c formula (blank Seats__c counts as zero, as formulas treat null numbers)."""
    n = seats or 0
    return "Enterprise" if n >= 500 else "Growth" if n >= 50 else "Starter"


def full_row(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored Account plus its derived fields (Tier__c, compound BillingAddress)."""
    row = dict(stored)
    row["Tier__c"] = tier(stored.get("Seats__c"))
    parts = {k: stored.get(v) if v else None for k, v in _ADDRESS_PARTS.items()}
    row["BillingAddress"] = parts if any(v is not None for v in parts.values()) else None
    return row


# -- describe ----------------------------------------------------------------------------------


def describe_field(spec: FieldSpec) -> dict[str, Any]:
    """The REST describe entry of one field, with every key the real describe carries."""
    text = spec.type in TEXT_TYPES or spec.type in ID_TYPES
    return {
        "aggregatable": spec.filterable and spec.type not in ("boolean", "multipicklist"),
        "autoNumber": False,
        "byteLength": spec.length * 3 if text and spec.type not in ID_TYPES else spec.length,
        "calculated": spec.formula is not None,
        "calculatedFormula": spec.formula,
        "cascadeDelete": False,
        "caseSensitive": False,
        "compoundFieldName": spec.compound,
        "controllerName": None,
        "createable": spec.createable,
        "custom": spec.name.endswith("__c"),
        "defaultValue": False if spec.type == "boolean" and spec.name.endswith("__c") else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": spec.defaulted,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": spec.digits,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": spec.external_id,
        "extraTypeInfo": spec.extra_type,
        "filterable": spec.filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": spec.formula is not None,
        "groupable": spec.filterable and spec.type not in ("double", "currency", "datetime"),
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": spec.id_lookup,
        "inlineHelpText": None,
        "label": spec.label,
        "length": spec.length,
        "mask": None,
        "maskType": None,
        "name": spec.name,
        "nameField": spec.name_field,
        "namePointing": False,
        "nillable": spec.nillable,
        "permissionable": spec.nillable and spec.updateable and spec.name.endswith("__c"),
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in spec.picklist
        ],
        "polymorphicForeignKey": False,
        "precision": spec.precision,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": list(spec.reference_to),
        "relationshipName": spec.relationship,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": spec.restricted,
        "scale": spec.scale,
        "searchPrefilterable": False,
        "soapType": _SOAP.get(spec.type, "xsd:string"),
        "sortable": spec.sortable,
        "type": spec.type,
        "unique": spec.unique,
        "updateable": spec.updateable,
        "writeRequiresMasterRead": False,
    }


def sobject_info(entity: str, version: str) -> dict[str, Any]:
    """The object-level describe keys (``GET sobjects/X`` and the global describe list)."""
    account = entity == "Account"
    base = f"/services/data/v{version}/sobjects/{entity}"
    return {
        "activateable": False,
        "createable": account,
        "custom": False,
        "customSetting": False,
        "deletable": account,
        "deprecatedAndHidden": False,
        "feedEnabled": account,
        "hasSubtypes": False,
        "isSubtype": False,
        "keyPrefix": "001" if account else "00D",
        "label": entity,
        "labelPlural": "Accounts" if account else "Organizations",
        "layoutable": account,
        "mergeable": account,
        "mruEnabled": account,
        "name": entity,
        "queryable": True,
        "replicateable": account,
        "retrieveable": True,
        "searchable": account,
        "triggerable": account,
        "undeletable": account,
        "updateable": account,
        "urls": {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
        },
    }


def describe(entity: Entity, version: str) -> dict[str, Any]:
    """The full ``GET sobjects/X/describe`` document."""
    specs = ACCOUNT_FIELDS if entity is ACCOUNT else ORGANIZATION_FIELDS
    doc = sobject_info(entity.name, version)
    doc.update(
        childRelationships=[],
        fields=[describe_field(s) for s in specs],
        recordTypeInfos=[
            {
                "active": True,
                "available": True,
                "defaultRecordTypeMapping": True,
                "developerName": "Master",
                "master": True,
                "name": "Master",
                "recordTypeId": "012000000000000AAA",
            }
        ],
        sobjectDescribeOption="FULL",
    )
    return doc
