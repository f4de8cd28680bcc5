"""Values crossing the simulated Salesforce API: errors, ids, datetimes, write validation.

Writes are checked in Salesforce's order: JSON deserialisation (unknown field, wrong JSON type),
field-level access (``INVALID_FIELD_FOR_INSERT_UPDATE``), then value rules (required, length,
restricted picklist, numeric range, reference ids).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from adapters.simulators.salesforce_schema import ACCOUNT_SPECS, FieldSpec
from adapters.simulators.soql import ID_RE, ID_TYPES, TEXT_TYPES

# -- errors ------------------------------------------------------------------------------------


class ApiError(Exception):
    """A Salesforce REST error. ``request_level`` errors fail a whole collections request."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[str] | None = None,
        *,
        request_level: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.fields = list(fields) if fields is not None else None
        self.request_level = request_level

    def body(self) -> list[dict[str, Any]]:
        """The single-resource error body: a JSON list whose entries carry ``errorCode``."""
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            entry["fields"] = self.fields
        return [entry]

    def record_error(self) -> dict[str, Any]:
        """The per-record error of a collections result, which uses ``statusCode``."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}


# -- ids and timestamps ------------------------------------------------------------------------

_SUFFIX_CHARS = string.ascii_uppercase + "012345"
_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def to18(record_id: str) -> str:
    """The 18-character form of a 15- or 18-character id (case-insensitive checksum suffix)."""
    body = record_id[:15]
    suffix = ""
    for chunk in (body[0:5], body[5:10], body[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX_CHARS[bits]
    return body + suffix


def make_id(prefix: str, n: int) -> str:
    """The ``n``-th id with key ``prefix`` ("001" Account, "005" User), e.g. 001Sm000000001aAAA."""
    digits = ""
    while n:
        n, rem = divmod(n, 62)
        digits = _BASE62[rem] + digits
    return to18(prefix + "Sm0" + digits.rjust(9, "0"))


def normalize_id(value: Any, prefix: str | None = None) -> str | None:
    """The 18-character id if ``value`` is a well-formed id (with ``prefix``), else None."""
    if not isinstance(value, str) or not ID_RE.match(value):
        return None
    if prefix is not None and not value.startswith(prefix):
        return None
    return to18(value)


def format_datetime(value: datetime) -> str:
    """Salesforce's datetime format, e.g. ``2024-05-01T12:34:56.000+0000``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_datetime(text: str) -> datetime | None:
    """An aware datetime from ISO 8601 with ``Z`` or an offset (``+00:00``/``+0000``), else None."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def render(value: Any) -> Any:
    """A stored Python value as Salesforce JSON renders it."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


# -- writes ------------------------------------------------------------------------------------

_JAVA = {"int": "int", "double": "double", "currency": "double", "percent": "double"}
_JAVA |= {"boolean": "boolean", "date": "date", "datetime": "datetime"}


def _json_token(value: Any) -> str:
    if isinstance(value, bool):
        return "VALUE_TRUE" if value else "VALUE_FALSE"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    if isinstance(value, float):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "START_ARRAY" if isinstance(value, list) else "VALUE_STRING"


def _parser_error(spec: FieldSpec, value: Any) -> ApiError:
    msg = (
        f"Cannot deserialize instance of {_JAVA.get(spec.type, 'string')} from "
        f"{_json_token(value)} value {value} or request may be missing a required field"
    )
    return ApiError(400, "JSON_PARSER_ERROR", msg, request_level=True)


def _deserialize(spec: FieldSpec, value: Any) -> Any:
    """JSON value -> Python value, coercing what Salesforce's deserialiser coerces."""
    if value is None:
        return None
    t = spec.type
    if isinstance(value, dict | list):
        raise _parser_error(spec, value)
    if t in TEXT_TYPES or t in ID_TYPES:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else str(value)
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif t == "int" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
    elif t in ("double", "currency", "percent") and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if number == number and abs(number) != float("inf"):
                return number
    elif t == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            pass
    elif t == "datetime" and isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is not None:
            return parsed
    raise _parser_error(spec, value)


def _check_value(spec: FieldSpec, value: Any) -> Any:
    """Value rules after access checks: length, picklists, numeric range, reference ids."""
    label, name = spec.label, spec.name
    if spec.type == "boolean":
        return bool(value)
    if isinstance(value, str) and spec.type in TEXT_TYPES:
        if spec.type == "multipicklist":
            parts = list(dict.fromkeys(p.strip() for p in value.split(";") if p.strip()))
            value = ";".join(parts)
        if value == "":
            return None
        if spec.length and len(value) > spec.length:
            shown = value if len(value) <= 80 else value[:80] + "..."
            msg = f"{label}: data value too large: {shown} (max length={spec.length})"
            raise ApiError(400, "STRING_TOO_LONG", msg, [name])
        choices = value.split(";") if spec.type == "multipicklist" else [value]
        bad = [c for c in choices if spec.restricted and c not in spec.picklist]
        if bad:
            msg = f"{label}: bad value for restricted picklist field: {bad[0]}"
            raise ApiError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", msg, [name])
        return value
    if spec.type == "reference" and value is not None:
        normal = normalize_id(value, "005")
        if normal is None:
            msg = f"{label}: id value of incorrect type: {value}"
            raise ApiError(400, "MALFORMED_ID", msg, [name])
        return normal
    if isinstance(value, int | float) and (spec.digits or spec.precision):
        whole = spec.digits or spec.precision - spec.scale
        if abs(value) >= 10**whole:
            msg = f"{label}: value outside of valid range on numeric field: {value}"
            raise ApiError(400, "NUMBER_OUTSIDE_VALID_RANGE", msg, [name])
        return round(value, spec.scale) if isinstance(value, float) else value
    return value


def validate_write(data: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
    """Check one Account write body; returns describe-cased field -> Python value, or raises."""
    values: dict[str, tuple[FieldSpec, Any]] = {}
    refused: list[str] = []
    for key, raw in data.items():
        if key == "attributes":
            continue
        if key.lower() == "id":
            msg = "The Id field should not be specified in the sobject data."
            raise ApiError(400, "INVALID_FIELD", msg, ["Id"])
        spec = ACCOUNT_SPECS.get(key.lower())
        if spec is None:
            msg = f"No such column '{key}' on sobject of type Account"
            raise ApiError(400, "INVALID_FIELD", msg, request_level=True)
        if not (spec.createable if creating else spec.updateable):
            refused.append(spec.name)
        else:
            values[spec.name] = (spec, _deserialize(spec, raw))
    if refused:
        msg = (
            f"Unable to create/update fields: {', '.join(refused)}. Please check the security "
            "settings of this field and verify that it is read/write for your profile or "
            "permission set."
        )
        raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", msg, refused)
    checked = {name: _check_value(spec, value) for name, (spec, value) in values.items()}
    missing = ["Name"] if creating and checked.get("Name") is None else []
    missing += [n for n, (spec, _) in values.items() if checked[n] is None and not spec.nillable]
    if missing:
        missing = list(dict.fromkeys(missing))
        msg = f"Required fields are missing: [{', '.join(missing)}]"
        raise ApiError(400, "REQUIRED_FIELD_MISSING", msg, missing)
    return checked


def seed_value(spec: FieldSpec, value: Any) -> Any:
    """A seed-file value for any stored field, system fields included (no access checks)."""
    if spec.type == "id":
        normal = normalize_id(value, "001")
        if normal is None:
            raise ValueError(f"not an Account id: {value!r}")
        return normal
    return _check_value(spec, _deserialize(spec, value))
