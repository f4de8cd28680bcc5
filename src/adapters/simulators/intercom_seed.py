"""Seed data for a simulated Intercom workspace: read, loaded without webhooks, dumped back.

The format is ``{"companies": [...], "data_attributes": [...]}``; a company is a full object (as
``GET /companies/{id}`` answers, ``plan`` an object or a name) or a create body, and an attribute a
``POST /data_attributes`` body whose ``options`` may be plain values.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from adapters.simulators.intercom_companies import CompanyRecords
from adapters.simulators.intercom_model import (
    WRITABLE_COMPANY_FIELDS,
    AttributeCatalog,
    IntercomError,
    parameter_invalid,
)
from adapters.simulators.intercom_writes import SYSTEM_FIELDS, company_id_of, prepare_write

JSON = dict[str, Any]


def read_seed_file(path: str | Path) -> Any:
    """The JSON document in ``path``; ValueError saying why it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read Intercom seed data from {path}: {exc}") from None


def seed_workspace(
    data: Mapping[str, Any],
    *,
    companies: CompanyRecords,
    catalog: AttributeCatalog,
    timestamp: Callable[[], int],
    source: str,
) -> None:
    """Add data attributes, then companies; ValueError naming the first bad record."""
    for i, raw in enumerate(data.get("data_attributes", [])):
        body = dict(raw)
        body.setdefault("model", "company")
        if isinstance(body.get("options"), list) and body["options"]:
            opts = body["options"]
            body["options"] = [o if isinstance(o, dict) else {"value": o} for o in opts]
            body["data_type"] = "options"
        try:
            catalog.create(body, timestamp())
        except IntercomError as exc:
            raise ValueError(f"{source}: data_attributes[{i}]: {exc.message}") from None
    for i, raw in enumerate(data.get("companies", [])):
        try:
            _seed_company(raw, companies, catalog, timestamp)
        except IntercomError as exc:
            raise ValueError(f"{source}: companies[{i}]: {exc.message}") from None


def dump_workspace(companies: CompanyRecords, catalog: AttributeCatalog) -> JSON:
    """What :func:`seed_workspace` reads back: every company and the live custom attributes."""
    attributes = [
        {k: v for k, v in a.to_json().items() if k in ("name", "data_type", "options")}
        for a in catalog
        if a.custom and not a.archived
    ]
    return {"companies": copy.deepcopy(list(companies)), "data_attributes": attributes}


def _seed_company(
    raw: Mapping[str, Any],
    companies: CompanyRecords,
    catalog: AttributeCatalog,
    timestamp: Callable[[], int],
) -> None:
    body = dict(raw)
    company_id = company_id_of(body.get("company_id"))
    if companies.by_company_id(company_id) is not None:
        raise parameter_invalid(f"company_id '{company_id}' appears twice")
    if isinstance(body.get("plan"), dict):
        body["plan"] = body["plan"].get("name")
    writable = {k: v for k, v in body.items() if k in WRITABLE_COMPANY_FIELDS}
    writable.update({k: body[k] for k in SYSTEM_FIELDS if k in body})
    write = prepare_write(writable, catalog, timestamp, system=True)
    company = companies.create(company_id, write, intercom_id=body.get("id"))
    company.update({k: body[k] for k in ("created_at", "updated_at") if body.get(k)})
