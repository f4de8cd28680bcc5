"""Intercom's company object as the ledger sees it: attributes keyed by full name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledger.facts import CompanyChange, CompanyKind

STANDARD_ATTRIBUTES = (
    "name",
    "website",
    "industry",
    "size",
    "monthly_spend",
    "remote_created_at",
    "created_at",
    "updated_at",
    "last_request_at",
    "session_count",
    "user_count",
)
CUSTOM_PREFIX = "custom_attributes."


def company_to_change(company: Mapping[str, Any], kind: CompanyKind, source: str) -> CompanyChange:
    """Flatten an Intercom company object into a :class:`CompanyChange`.

    Attributes are keyed by full name: standard ones as is, ``plan.name`` from ``plan``, and
    ``custom_attributes.<k>`` for each custom attribute. Missing standard attributes are omitted.
    """
    attributes: dict[str, Any] = {k: company[k] for k in STANDARD_ATTRIBUTES if k in company}
    plan = company.get("plan")
    if isinstance(plan, Mapping) and plan.get("name") is not None:
        attributes["plan.name"] = plan["name"]
    custom = company.get("custom_attributes")
    if isinstance(custom, Mapping):
        for key, value in custom.items():
            attributes[f"{CUSTOM_PREFIX}{key}"] = value
    company_id = company.get("company_id")
    return CompanyChange(
        intercom_id=str(company["id"]),
        company_id=str(company_id) if company_id is not None else None,
        attributes=attributes,
        updated_at=int(company.get("updated_at") or 0),
        kind=kind,
        source=source,
    )
