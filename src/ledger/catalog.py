"""Field catalogs: what Salesforce's describe and Intercom's data attributes say about fields.

The catalogs are facts read from the two systems; configuration is validated against them and the
parts a decision needs (types, picklist values) are copied into the applied configuration, so
decisions never need to ask either system again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class SalesforceField:
    """One Account field as Salesforce's ``sobjects/Account/describe`` reports it."""

    name: str
    type: str
    label: str = ""
    calculated: bool = False
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    compound_field_name: str | None = None
    length: int = 0
    picklist_values: tuple[str, ...] = ()
    restricted_picklist: bool = False

    @classmethod
    def from_describe(cls, data: Mapping[str, Any]) -> SalesforceField:
        """Build from one entry of the describe result's ``fields`` list."""
        return cls(
            name=str(data["name"]),
            type=str(data["type"]).lower(),
            label=str(data.get("label") or ""),
            calculated=bool(data.get("calculated", False)),
            updateable=bool(data.get("updateable", False)),
            createable=bool(data.get("createable", False)),
            nillable=bool(data.get("nillable", True)),
            compound_field_name=data.get("compoundFieldName") or None,
            length=int(data.get("length") or 0),
            picklist_values=tuple(
                str(p["value"]) for p in data.get("picklistValues") or () if p.get("active", True)
            ),
            restricted_picklist=bool(data.get("restrictedPicklist", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label,
            "calculated": self.calculated,
            "updateable": self.updateable,
            "createable": self.createable,
            "nillable": self.nillable,
            "compound_field_name": self.compound_field_name,
            "length": self.length,
            "picklist_values": list(self.picklist_values),
            "restricted_picklist": self.restricted_picklist,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SalesforceField:
        values = dict(data)
        values["picklist_values"] = tuple(values.get("picklist_values") or ())
        return cls(**values)


@dataclass(frozen=True)
class IntercomAttribute:
    """One company data attribute as Intercom's ``GET /data_attributes?model=company`` reports it.

    ``name`` is the attribute's full name: ``"name"`` for a standard attribute,
    ``"custom_attributes.plan"`` for a custom one.
    """

    name: str
    data_type: str
    api_writable: bool = True
    custom: bool = False
    label: str = ""

    @classmethod
    def from_data_attribute(cls, data: Mapping[str, Any]) -> IntercomAttribute:
        """Build from one entry of the data attributes list."""
        return cls(
            name=str(data.get("full_name") or data["name"]),
            data_type=str(data["data_type"]).lower(),
            api_writable=bool(data.get("api_writable", False)),
            custom=bool(data.get("custom", False)),
            label=str(data.get("label") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "data_type": self.data_type,
            "api_writable": self.api_writable,
            "custom": self.custom,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntercomAttribute:
        return cls(**dict(data))


@dataclass(frozen=True)
class FieldCatalog:
    """Both systems' field catalogs, keyed by field name / attribute full name."""

    salesforce: Mapping[str, SalesforceField] = field(default_factory=dict)
    intercom: Mapping[str, IntercomAttribute] = field(default_factory=dict)

    @classmethod
    def of(
        cls, salesforce: Iterable[SalesforceField], intercom: Iterable[IntercomAttribute]
    ) -> FieldCatalog:
        return cls(
            salesforce={f.name: f for f in salesforce},
            intercom={a.name: a for a in intercom},
        )
