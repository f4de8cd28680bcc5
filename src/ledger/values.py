"""Values crossing between the two systems: type compatibility, conversion, emptiness, keys.

The compatibility table is syncledger's decision (Intercom's own is not public):

=====================================================  ================  =====================
Salesforce field type                                  Intercom type     directions
=====================================================  ================  =====================
string, textarea, phone, url, email, picklist,         string            both
combobox
int                                                    integer           both
double, currency, percent                              float             both; Intercom
                                                                         integer -> these too
                                                                         (that way only)
boolean                                                boolean           both
date, datetime                                         date (Unix s)     both
multipicklist                                          string (``;``)    Salesforce->Intercom
address, location, calculated, base64, reference       --                never
=====================================================  ================  =====================

A value that cannot be converted is a :class:`Rejected` result, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from ledger.catalog import IntercomAttribute, SalesforceField
from ledger.config import Direction

STRING_TYPES = frozenset({"string", "textarea", "phone", "url", "email", "picklist", "combobox"})
FLOAT_TYPES = frozenset({"double", "currency", "percent"})
DATE_TYPES = frozenset({"date", "datetime"})
NEVER_TYPES = frozenset({"address", "location", "base64", "reference"})
#: Salesforce field types usable as the identifier (the record ``Id`` itself is excluded).
IDENTIFIER_TYPES = frozenset({"string", "int", "double", "id"})

BOTH = frozenset(Direction)
S2I = frozenset({Direction.SALESFORCE_TO_INTERCOM})
I2S = frozenset({Direction.INTERCOM_TO_SALESFORCE})


def allowed_directions(sf_type: str, ic_type: str) -> frozenset[Direction]:
    """Directions in which a Salesforce field type and an Intercom data type may be mapped."""
    if sf_type in STRING_TYPES and ic_type == "string":
        return BOTH
    if sf_type == "int" and ic_type == "integer":
        return BOTH
    if sf_type in FLOAT_TYPES and ic_type == "float":
        return BOTH
    if sf_type in FLOAT_TYPES and ic_type == "integer":
        return I2S  # an Intercom integer fits a Salesforce number; the reverse would truncate
    if sf_type == "boolean" and ic_type == "boolean":
        return BOTH
    if sf_type in DATE_TYPES and ic_type == "date":
        return BOTH
    if sf_type == "multipicklist" and ic_type == "string":
        return S2I
    return frozenset()


def is_empty(value: Any) -> bool:
    """Empty means absent: ``None`` or a blank string. ``0`` and ``False`` are values."""
    return value is None or (isinstance(value, str) and value.strip() == "")


@dataclass(frozen=True)
class Converted:
    """A source value converted into the destination's representation."""

    value: Any


@dataclass(frozen=True)
class Rejected:
    """A source value that the destination cannot take, and why."""

    reason: str


Conversion = Converted | Rejected


def convert(
    value: Any, sf: SalesforceField, ic: IntercomAttribute, direction: Direction
) -> Conversion:
    """Convert ``value`` from the mapping's source representation to its destination's."""
    if is_empty(value):
        return Converted(None)
    try:
        if direction is Direction.SALESFORCE_TO_INTERCOM:
            return _to_intercom(value, sf, ic)
        return _to_salesforce(value, sf, ic)
    except (ValueError, TypeError, OverflowError) as exc:
        return Rejected(f"cannot convert {value!r} for {sf.type} ⇄ {ic.data_type}: {exc}")


def _to_intercom(value: Any, sf: SalesforceField, ic: IntercomAttribute) -> Conversion:
    t = ic.data_type
    if t == "string":
        if isinstance(value, bool | dict | list):
            raise TypeError("not a text value")
        return Converted(str(value))
    if t == "integer":
        return Converted(_as_int(value))
    if t == "float":
        return Converted(_as_float(value))
    if t == "boolean":
        return Converted(_as_bool(value))
    if t == "date":
        return Converted(salesforce_to_unix(value, sf.type))
    raise TypeError(f"unsupported Intercom type {t!r}")


def _to_salesforce(value: Any, sf: SalesforceField, ic: IntercomAttribute) -> Conversion:
    t = sf.type
    if t in STRING_TYPES:
        if isinstance(value, bool | dict | list):
            raise TypeError("not a text value")
        text = str(value)
        if sf.length and len(text) > sf.length:
            return Rejected(f"{len(text)} characters exceed {sf.name}'s length of {sf.length}")
        if (
            t == "picklist"
            and sf.restricted_picklist
            and sf.picklist_values
            and text not in sf.picklist_values
        ):
            return Rejected(f"{text!r} is not a value of the restricted picklist {sf.name}")
        return Converted(text)
    if t == "int":
        return Converted(_as_int(value))
    if t in FLOAT_TYPES:
        return Converted(_as_float(value))
    if t == "boolean":
        return Converted(_as_bool(value))
    if t == "date":
        return Converted(unix_to_date(_as_int(value)))
    if t == "datetime":
        return Converted(unix_to_datetime(_as_int(value)))
    raise TypeError(f"unsupported Salesforce type {t!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError("not a whole number")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            f = float(text)
            if not math.isfinite(f) or f != int(f):
                raise ValueError("not a whole number") from None
            return int(f)
    raise TypeError("not a number")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int | float | str):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError("not a finite number")
        return f
    raise TypeError("not a number")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    raise TypeError("not a boolean")


def salesforce_to_unix(value: Any, sf_type: str) -> int:
    """A Salesforce date (``2024-05-01``, taken as 00:00 UTC) or datetime → Unix seconds."""
    if not isinstance(value, str):
        raise TypeError("not a date")
    text = value.strip()
    if sf_type == "date" or len(text) == 10:
        d = date.fromisoformat(text[:10])
        return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())
    return int(parse_salesforce_datetime(text).timestamp())


def parse_salesforce_datetime(text: str) -> datetime:
    """Parse ``2024-05-01T12:34:56.000+0000`` (and ISO variants) to an aware UTC datetime."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    elif len(t) >= 5 and t[-5] in "+-" and t[-4:].isdigit():
        t = t[:-2] + ":" + t[-2:]
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_salesforce_datetime(dt: datetime) -> str:
    """Render as Salesforce does: ``2024-05-01T12:34:56.000+0000``."""
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


def unix_to_date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).date().isoformat()


def unix_to_datetime(seconds: int) -> str:
    return format_salesforce_datetime(datetime.fromtimestamp(seconds, tz=UTC))


def same_value(a: Any, b: Any, dest_type: str) -> bool:
    """Whether two values are the same in the destination's type (``100`` equals ``100.0``).

    ``dest_type`` is a Salesforce field type or an Intercom data type.
    """
    if is_empty(a) or is_empty(b):
        return is_empty(a) and is_empty(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if dest_type in FLOAT_TYPES | {"float", "int", "integer"}:
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if dest_type == "datetime":
        try:
            return parse_salesforce_datetime(str(a)) == parse_salesforce_datetime(str(b))
        except ValueError:
            return False
    if dest_type == "date" and isinstance(a, int | float) and isinstance(b, int | float):
        return int(a) == int(b)
    return bool(a == b)


def key_of(value: Any, identifier_type: str) -> str | None:
    """The identifier value as text comparable with an Intercom ``company_id``.

    Numbers are written without a fractional part when they have none (``12345.0`` → ``"12345"``).
    """
    if is_empty(value) or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value == int(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if identifier_type in {"int", "double"}:
            try:
                return key_of(float(value) if "." in value else int(value), identifier_type)
            except ValueError:
                return value
        return value
    return str(value)
