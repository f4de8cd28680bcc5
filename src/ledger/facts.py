"""What the outside world tells the ledger: changes, removals, lookup answers, write outcomes.

These are plain input values; the ledger records each as an event before deciding anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ledger.writes import ApiCall

CompanyKind = Literal["created", "updated", "snapshot"]
AccountKind = Literal["change", "snapshot"]


@dataclass(frozen=True)
class CompanyChange:
    """An Intercom company as a webhook, lookup or read showed it.

    ``attributes`` are keyed by full attribute name (``"name"``, ``"custom_attributes.plan"``).
    ``kind`` is the trigger: ``created``/``updated`` from webhooks; ``snapshot`` for reads and
    lookup answers, which are facts but trigger no sync.
    """

    intercom_id: str
    company_id: str | None
    attributes: Mapping[str, Any]
    updated_at: int
    kind: CompanyKind = "updated"
    source: str = "webhook"


@dataclass(frozen=True)
class CompanyRemoval:
    """Intercom reported a company deleted."""

    intercom_id: str
    company_id: str | None = None
    source: str = "webhook"


@dataclass(frozen=True)
class AccountChange:
    """A Salesforce account as a poll, lookup or read showed it (``fields`` by API name)."""

    salesforce_id: str
    fields: Mapping[str, Any]
    system_modstamp: str
    is_person_account: bool = False
    kind: AccountKind = "change"
    source: str = "poll"


@dataclass(frozen=True)
class AccountRemoval:
    """Salesforce reported an account deleted."""

    salesforce_id: str
    deleted_at: str | None = None
    source: str = "poll"


@dataclass(frozen=True)
class LookupAnswer:
    """The answer to "which records in ``system`` carry these ``keys`` in ``field``?".

    ``records`` are snapshots of every record found (kind ``snapshot``); keys with no record
    are recorded as answered-empty, so the question is not asked again.
    """

    system: str
    field: str
    keys: tuple[str, ...]
    records: tuple[AccountChange | CompanyChange, ...] = ()


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one planned write when the writer sent it (``api_call``: the request
    that carried it, when the writer reports one)."""

    write_id: str
    ok: bool
    before: Any = None
    error: str = ""
    code: str = ""
    retryable: bool = False
    api_call: ApiCall | None = None


@dataclass(frozen=True)
class ApiUsage:
    """A system's API usage as its latest answer reported it (Salesforce's
    ``Sforce-Limit-Info: api-usage=used/limit``); ``allocation`` is our configured share."""

    system: str
    used: int
    limit: int
    allocation: int | None = None


@dataclass(frozen=True)
class DeletionsMissed:
    """The system can no longer list every deletion since our last poll (Salesforce's delete
    log does not reach back that far): every known record must be read again."""

    system: str
    reason: str


Fact = (
    CompanyChange
    | CompanyRemoval
    | AccountChange
    | AccountRemoval
    | LookupAnswer
    | WriteOutcome
    | ApiUsage
    | DeletionsMissed
)


def fact_to_dict(fact: CompanyChange | CompanyRemoval) -> dict[str, Any]:
    """A company change or removal as JSON values (for :class:`NotificationReceived`)."""
    if isinstance(fact, CompanyRemoval):
        return {"type": "removal", "intercom_id": fact.intercom_id,
                "company_id": fact.company_id, "source": fact.source}  # fmt: skip
    return {"type": "change", "intercom_id": fact.intercom_id, "company_id": fact.company_id,
            "attributes": dict(fact.attributes), "updated_at": fact.updated_at,
            "kind": fact.kind, "source": fact.source}  # fmt: skip


def fact_from_dict(data: Mapping[str, Any]) -> CompanyChange | CompanyRemoval:
    """The inverse of :func:`fact_to_dict`."""
    if data["type"] == "removal":
        return CompanyRemoval(data["intercom_id"], data["company_id"], data["source"])
    return CompanyChange(data["intercom_id"], data["company_id"], dict(data["attributes"]),
                         int(data["updated_at"]), data["kind"], data["source"])  # fmt: skip
