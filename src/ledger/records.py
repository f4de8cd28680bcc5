"""What the ledger's state knows of each record, mapping, pending write and system.

Frozen values held by :class:`ledger.state.LedgerState`; a change replaces one whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.budget import Tier
from ledger.writes import PlannedWrite


@dataclass(frozen=True)
class AccountRecord:
    """What the ledger knows of one Salesforce account."""

    salesforce_id: str
    fields: Mapping[str, Any]
    system_modstamp: str
    is_person_account: bool
    deleted: bool = False
    #: values we wrote (or are writing) whose echo we expect to see next
    expected: Mapping[str, Any] = field(default_factory=dict)
    #: the fields as of the last change Salesforce reported (``None``: only read so far);
    #: changes are derived against this, not against reads and lookups
    baseline: Mapping[str, Any] | None = None
    trigger_stamp: str = ""


@dataclass(frozen=True)
class CompanyRecord:
    """What the ledger knows of one Intercom company (attributes by full name)."""

    intercom_id: str
    company_id: str | None
    attributes: Mapping[str, Any]
    updated_at: int
    deleted: bool = False
    expected: Mapping[str, Any] = field(default_factory=dict)
    #: the attributes as of the last change Intercom reported (``None``: only read so far)
    baseline: Mapping[str, Any] | None = None
    trigger_stamp: int = -1
    #: a ``company.created`` was decided (a later one is a duplicate)
    created: bool = False


@dataclass(frozen=True)
class IdentityLink:
    """An established company ↔ account mapping."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    config_version: int


@dataclass(frozen=True)
class PendingWrite:
    """A planned write without a final outcome yet, to ``system``'s record ``record_id``."""

    seq: int
    system: str
    record_id: str
    write: PlannedWrite
    attempts: int = 0

    @property
    def write_id(self) -> str:
        return self.write.write_id

    @property
    def field(self) -> str:
        return self.write.field

    @property
    def value(self) -> Any:
        return self.write.value


@dataclass(frozen=True)
class RecordedUsage:
    """A system's API usage as the latest ``ApiUsageObserved`` recorded it."""

    used: int
    limit: int
    allocation: int | None
    tier: Tier
