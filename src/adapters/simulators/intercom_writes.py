"""Company writes checked completely before anything in the workspace changes.

A request body (or a helper's keyword arguments, or a seed record) becomes a
:class:`~adapters.simulators.intercom_companies.CompanyWrite`, or an
:class:`~adapters.simulators.intercom_model.IntercomError` naming what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from adapters.simulators.intercom_companies import CompanyWrite
from adapters.simulators.intercom_model import (
    WRITABLE_COMPANY_FIELDS,
    AttributeCatalog,
    IntercomError,
    normalize_company_fields,
    parameter_invalid,
)

JSON = dict[str, Any]

# Not writable through the API, but the helpers and seed data may set them (users, activity).
SYSTEM_FIELDS = ("user_count", "session_count", "last_request_at")


def refuse_unknown(body: Mapping[str, Any], also: set[str]) -> None:
    """400 ``bad_request`` for a key that is neither a writable company field nor in ``also``."""
    for key in body:
        if key not in WRITABLE_COMPANY_FIELDS and key not in also:
            raise IntercomError(400, "bad_request", f"bad '{key}' parameter")


def company_id_of(value: Any) -> str:
    """The ``company_id`` a body gives (an integer becomes its text), or 400."""
    if value is None or value == "":
        raise IntercomError(
            400, "parameter_not_found", "company_id not specified", field="company_id"
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise parameter_invalid("company_id must be a string", "company_id")
    return value


def prepare_write(
    body: Mapping[str, Any],
    catalog: AttributeCatalog,
    timestamp: Callable[[], int],
    *,
    system: bool = False,
) -> CompanyWrite:
    """Validate a write: standard fields, custom attributes against ``catalog``, the system
    fields when ``system`` allows them, and ``update_last_request_at`` (stamped ``timestamp()``)."""
    fields = normalize_company_fields(body)
    custom = (
        catalog.check_custom_values(body["custom_attributes"])
        if body.get("custom_attributes") is not None
        else {}
    )
    extra: JSON = {}
    if system:
        for key in SYSTEM_FIELDS:
            if key in body:
                value = body[key]
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise parameter_invalid(f"{key} must be an integer", key)
                extra[key] = value
    touch = body.get("update_last_request_at")
    if touch is not None and not isinstance(touch, bool):
        raise parameter_invalid("update_last_request_at must be a boolean")
    if touch:
        extra["last_request_at"] = timestamp()
    return CompanyWrite(fields, custom, extra)
