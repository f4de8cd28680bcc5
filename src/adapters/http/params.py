"""Query and path parameters the audit API and the review pages share, and their 422 answers.

Text parameters take no control characters (PostgreSQL refuses NUL) and at most 255
characters. Times are ISO-8601 only (pydantic alone would also take Unix seconds); one without
a zone is taken as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BeforeValidator

__all__ = [
    "MAX_POSITION",
    "TEXT",
    "IsoTime",
    "RuleName",
    "Since",
    "Until",
    "instant",
    "invalid",
]

#: The largest ledger position a parameter may name.
MAX_POSITION = 2**63 - 1
#: Text parameters: no control characters (PostgreSQL refuses NUL), at most 255 characters.
TEXT = r"^[^\x00-\x1f\x7f]+$"
RuleName = Literal["skip_if_source_empty", "skip_if_destination_has_value", "none"]


def _iso(value: Any) -> Any:
    """Only ISO-8601 text is a time here (pydantic would also take Unix seconds)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError("not an ISO-8601 date and time, e.g. 2026-01-31T09:00:00Z") from None
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso)]
Since = Annotated[
    IsoTime | None, Query(description="From this instant (inclusive), ISO-8601; UTC if no zone.")
]
Until = Annotated[
    IsoTime | None, Query(description="Up to this instant (exclusive), ISO-8601; UTC if no zone.")
]


def invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 answer in FastAPI's validation-error shape, naming the query ``parameter``."""
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error"}]
    )


def instant(value: datetime | None, name: str) -> datetime | None:
    """``value`` as a UTC datetime (naive taken as UTC). An instant beyond what a datetime can
    hold in UTC (``9999-12-31T23:59:59-14:00``) is clamped to the first or last one."""
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return aware.astimezone(UTC)
    except OverflowError:
        return (datetime.max if aware.year > 1 else datetime.min).replace(tzinfo=UTC)
