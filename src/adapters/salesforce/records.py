"""What the Salesforce adapter answers with (API usage, write results, poll results), and
the SOQL helpers it and the replay's sandbox share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger.facts import AccountChange, AccountRemoval

JSON = dict[str, Any]


@dataclass(frozen=True)
class Usage:
    """``Sforce-Limit-Info: api-usage=used/total`` of the latest answer."""

    used: int
    total: int


@dataclass(frozen=True)
class WriteResult:
    """What Salesforce answered for one record of a collection update."""

    salesforce_id: str
    ok: bool
    code: str = ""
    message: str = ""
    fields: tuple[str, ...] = ()
    retryable: bool = False
    api_call: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class PollResult:
    """One poll: changes and removals since the watermark, and where to start next time.

    ``watermark`` is the candidate for the next poll's watermark (the highest SystemModstamp seen,
    or getDeleted's ``latestDateCovered`` when later); ``deletes_covered_until`` is that
    ``latestDateCovered``. ``resync_needed`` means deletions may have been missed (the delete log
    no longer reaches back to the requested start): re-read every account. ``api_calls`` holds one
    dict per API request made.
    """

    changes: list[AccountChange]
    removals: list[AccountRemoval]
    watermark: str | None
    deletes_covered_until: str | None = None
    resync_needed: bool = False
    message: str = ""
    api_calls: list[JSON] = field(default_factory=list)


def escape_soql(value: str) -> str:
    """``value`` as the body of a SOQL string literal (quotes and backslashes escaped)."""
    out = value.replace("\\", "\\\\").replace("'", "\\'")
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def soql_datetime(dt: datetime) -> str:
    """An unquoted SOQL datetime literal, whole seconds (rounded down) in UTC with ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error_detail(content: Any) -> tuple[str, str]:
    """``(errorCode, message)`` from a simple-salesforce exception's parsed body."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        first = content[0]
        return str(first.get("errorCode", "")), str(first.get("message", ""))
    return "", str(content)[:200]
