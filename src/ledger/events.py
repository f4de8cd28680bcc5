"""The ledger's domain events: every external fact and every decision, immutable.

Streams (each an ``originator_id``, see :mod:`ledger.ids`) and what they hold:

* configuration (one stream): ``ConfigurationApplied``.
* one stream per Intercom company: ``CompanyCreated``/``CompanyUpdated``/``CompanyObserved``/
  ``CompanyDeleted`` (facts), and the decisions about writing *to* that company.
* one stream per Salesforce account: ``AccountCreated``/``AccountUpdated``/
  ``AccountIdentifierChanged``/``AccountObserved``/``AccountDeleted`` (facts), and the decisions
  about writing *to* that account.
* one stream per identity key (the ``company_id`` value): ``IdentityMapped``/``IdentityUnmapped``.
* one stream per lookup key: ``LookupAnswered``.
* one stream per system: ``ApiUsageObserved``, ``ResyncNeeded``, ``ResyncCompleted``.
* the inbox stream: ``NotificationReceived``, ``NotificationsTaken``.
* the head stream: one ``LedgerAdvanced`` per transaction; its version numbers serialise all
  writers, so a decision is always taken on the complete ledger (optimistic concurrency).

Facts say what a system told us; decisions (``RecordIgnored``, ``NotSynced``,
``EchoRecognised``, ``IdentityMapped``/``Unmapped``, ``SyncPlanned``, ``WriteSkipped``) are
derived from facts and configuration by :mod:`ledger.decisions`; outcomes (``WriteApplied``,
``WriteFailed``) are facts again. Event fields are JSON values only, so a stored event decodes
to an equal event (and the projector may decode one without the mapper). Fields holding a
record as a JSON object (a planned write, a replay's batch) are read through the typed
properties beside them (``SyncPlanned.writes``, ``WriteApplied.planned_write``, ...), never by
key.

Every event class is a frozen dataclass (``eventsourcing`` makes it one) and is declared as
one to the type checker (:func:`typing.dataclass_transform`), so each construction is checked
field by field: ``ev.NotSynced(**stamp, system=..., reason=..., key=..., cause=...)`` with a
:class:`Stamp` for the stream, version and time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, dataclass_transform
from uuid import UUID

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import register_topic

from ledger.budget import Tier
from ledger.config import ActiveConfig
from ledger.facts import CompanyChange, CompanyRemoval, fact_from_dict
from ledger.replay_batches import RecordAnswer, ReplayWrite
from ledger.writes import PlannedWrite, RejectedWrite, SkippedWrite

SALESFORCE = "salesforce"
INTERCOM = "intercom"

#: Every ledger event class by its stable topic.
EVENT_CLASSES: dict[str, type[LedgerEvent]] = {}


class Stamp(TypedDict):
    """Where and when an event is appended: its stream, its version there, and the time."""

    originator_id: UUID
    originator_version: int
    timestamp: datetime


@dataclass_transform(frozen_default=True)
class LedgerEvent(DomainEvent):
    """Base of all ledger events. ``timestamp`` comes from the injected clock.

    Typed views of stored JSON fields are plain properties, never cached on the instance: the
    mapper stores an event's ``__dict__`` as it is.
    """

    TOPIC = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        topic = f"syncledger:{cls.__name__}"
        cls.TOPIC = topic
        register_topic(topic, cls)
        EVENT_CLASSES[topic] = cls

    @property
    def ref(self) -> str:
        """A stable reference to this event: ``<stream>:<version>``."""
        return f"{self.originator_id}:{self.originator_version}"


# --- configuration -------------------------------------------------------------------------


class ConfigurationApplied(LedgerEvent):
    """A validated configuration became the one in force (``config`` = ActiveConfig dict)."""

    version: int
    config: dict[str, Any]
    previous_identifier_field: str


# --- Intercom company facts ---------------------------------------------------------------


class CompanyFact(LedgerEvent):
    intercom_id: str
    company_id: str | None
    attributes: dict[str, Any]
    updated_at: int
    changed: list[str]
    source: str


class CompanyCreated(CompanyFact):
    """Intercom reported a new company (trigger: company created)."""


class CompanyUpdated(CompanyFact):
    """Intercom reported a changed company (trigger: company updated)."""


class CompanyObserved(CompanyFact):
    """We read a company (lookup answer, read before write): a fact, not a trigger."""


class CompanyDeleted(LedgerEvent):
    """Intercom reported a company deleted (trigger: company deleted)."""

    intercom_id: str
    company_id: str | None
    source: str


# --- Salesforce account facts -------------------------------------------------------------


class AccountFact(LedgerEvent):
    salesforce_id: str
    fields: dict[str, Any]
    system_modstamp: str
    is_person_account: bool
    changed: list[str]
    source: str


class AccountCreated(AccountFact):
    """Salesforce showed an account we had never seen (trigger: account created)."""


class AccountUpdated(AccountFact):
    """Salesforce showed a changed account (trigger: account updated)."""


class AccountIdentifierChanged(AccountFact):
    """Salesforce showed an account whose identifier value changed (trigger: key updated)."""

    identifier_field: str
    old_value: str | None
    new_value: str | None


class AccountObserved(AccountFact):
    """We read an account (lookup answer, read before write): a fact, not a trigger."""


class AccountDeleted(LedgerEvent):
    """Salesforce reported an account deleted (trigger: account deleted)."""

    salesforce_id: str
    deleted_at: str | None
    source: str


class LookupAnswered(LedgerEvent):
    """The other system answered "which records carry this key?" (``found`` = record ids)."""

    system: str
    field: str
    key: str
    found: list[str]


# --- decisions about records --------------------------------------------------------------


class RecordIgnored(LedgerEvent):
    """A record is never synced (person account, company without company_id)."""

    system: str
    record_id: str
    reason: str
    cause: str


class NotSynced(LedgerEvent):
    """A change was recorded but could not sync, and why (no counterpart yet, lost a tie, …)."""

    system: str
    record_id: str
    reason: str
    key: str | None
    cause: str


class EchoRecognised(LedgerEvent):
    """A change only reflected our own write; it triggers nothing."""

    system: str
    record_id: str
    fields: list[str]
    cause: str


# --- identity ----------------------------------------------------------------------------


class IdentityMapped(LedgerEvent):
    """A company and an account were matched on the identifier value ``company_id``."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    config_version: int
    trigger: str
    cause: str


class IdentityUnmapped(LedgerEvent):
    """A mapping ended; ``reason`` is one of :data:`UNMAP_REASONS`."""

    company_id: str
    intercom_id: str
    salesforce_id: str
    identifier_field: str
    reason: str
    cause: str


UNMAP_REASONS = (
    "company deleted",
    "account deleted",
    "key changed",
    "identifier field changed",
    "superseded by a more recently updated duplicate",
    "account is a person account",
    "company replaced",
)


# --- attribute writes --------------------------------------------------------------------


class SyncPlanned(LedgerEvent):
    """One trigger's attribute decisions for one destination record.

    ``planned``: writes to send; ``skipped``: values a rule held back; ``rejected``: values the
    destination cannot take. Each is stored as JSON objects; read them as
    :attr:`writes`, :attr:`skips` and :attr:`rejections` (:mod:`ledger.writes`).
    """

    system: str
    record_id: str
    company_id: str
    trigger: str
    cause: str
    config_version: int
    planned: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    @property
    def writes(self) -> list[PlannedWrite]:
        return [PlannedWrite.from_stored(d) for d in self.planned]

    @property
    def skips(self) -> list[SkippedWrite]:
        return [SkippedWrite.from_stored(d) for d in self.skipped]

    @property
    def rejections(self) -> list[RejectedWrite]:
        return [RejectedWrite.from_stored(d) for d in self.rejected]


class WriteEvent(LedgerEvent):
    """An event about one planned write (``write``, stored as a JSON object; read it as
    :attr:`planned_write`)."""

    system: str
    record_id: str
    write: dict[str, Any]

    @property
    def planned_write(self) -> PlannedWrite:
        return PlannedWrite.from_stored(self.write)

    @property
    def write_id(self) -> str:
        """The planned write's id (cheaper than :attr:`planned_write` when it is all one needs)."""
        return str(self.write["write_id"])


class WriteSkipped(WriteEvent):
    """A planned write will not be sent after all (``rule`` says why)."""

    rule: str
    detail: str
    cause: str


class WriteApplied(WriteEvent):
    """The destination accepted a write. ``before`` is its value just before the write;
    ``api_call`` the request that carried it (:meth:`ledger.writes.ApiCall.stored`, ``{}``
    when none was reported)."""

    before: Any
    api_call: dict[str, Any]


class WriteFailed(WriteEvent):
    """The destination refused a write, or the call failed; retryable ones stay pending."""

    error: str
    code: str
    retryable: bool
    attempt: int


# --- the webhook inbox ---------------------------------------------------------------------


class NotificationReceived(LedgerEvent):
    """An Intercom webhook was received and kept, not yet decided on (the ledger's inbox).

    ``fact`` is the company change or removal it reported (:func:`ledger.facts.fact_to_dict`).
    Recording it is what the webhook's 2xx answer promises: nothing received is lost.
    """

    notification_id: str
    fact: dict[str, Any]

    @property
    def reported(self) -> CompanyChange | CompanyRemoval:
        """The company change or removal ``fact`` holds."""
        return fact_from_dict(self.fact)


class NotificationsTaken(LedgerEvent):
    """Inbox notifications were decided on, in the same transaction as their facts."""

    notification_ids: list[str]


# --- the systems ---------------------------------------------------------------------------


class ApiUsageObserved(LedgerEvent):
    """A system's API usage, and the budget tier it puts the sync in (:mod:`ledger.budget`)."""

    system: str
    used: int
    limit: int
    allocation: int | None
    tier: Tier


class ResyncNeeded(LedgerEvent):
    """Deletions may have been missed; every known record of ``system`` must be read again."""

    system: str
    reason: str


class ResyncCompleted(LedgerEvent):
    """Every record of ``system`` the ledger knew as live was read again."""

    system: str
    records_read: int
    removed: int


# --- the head ------------------------------------------------------------------------------


class LedgerAdvanced(LedgerEvent):
    """Closes one ledger transaction; its version is the transaction's sequence number."""

    summary: str
    events: int


SKIP_RULES = (
    "source_empty",
    "destination_has_value",
    "already_equal",
    "no_mapping",
    "superseded",
    "configuration_changed",
    "retries_exhausted",
)


# --- replays into a sandbox org (one stream per run, see :mod:`ledger.replay`) ---------------


class ReplayStarted(LedgerEvent):
    """A replay of recorded history into a sandbox org began, its plan fixed.

    ``window_from``/``window_until`` are the ISO bounds asked for (``None``: open);
    ``until_position`` is the last ledger position read; ``config`` the configuration
    (ActiveConfig dict) the history was re-derived under, ``config_source`` where it came from;
    ``arguments`` identifies the request, so a restart with the same arguments resumes the run;
    ``summary`` counts the plan (records, writes, skips by rule, mappings gained and lost).
    """

    run_id: str
    requested_by: str
    target_org_id: str
    target_instance_url: str
    window_from: str | None
    window_until: str | None
    until_position: int
    config: dict[str, Any]
    config_source: str
    dry_run: bool
    arguments: str
    batches: int
    summary: dict[str, Any]

    @property
    def active_config(self) -> ActiveConfig:
        """The configuration ``config`` holds."""
        return ActiveConfig.from_dict(self.config)


class ReplayBatchPlanned(LedgerEvent):
    """One batch (at most 200 target records) of a replay's writes, recorded before it is sent.

    ``writes``: one stored :class:`~ledger.replay_batches.ReplayWrite` per field; read them as
    :attr:`replay_writes`.
    """

    run_id: str
    batch: int
    writes: list[dict[str, Any]]

    @property
    def replay_writes(self) -> list[ReplayWrite]:
        return [ReplayWrite.from_stored(d) for d in self.writes]


class ReplayBatchApplied(LedgerEvent):
    """What the target org answered for one batch: ``results``, one stored
    :class:`~ledger.replay_batches.RecordAnswer` per record sent (read them as :attr:`answers`);
    ``already`` lists records found already holding the planned values on resume (not sent
    again)."""

    run_id: str
    batch: int
    results: list[dict[str, Any]]
    already: list[str]
    api_calls: int

    @property
    def answers(self) -> list[RecordAnswer]:
        return [RecordAnswer.from_stored(d) for d in self.results]


class ReplayPaused(LedgerEvent):
    """A replay stopped before its end (API budget tier, an error); it can be resumed."""

    run_id: str
    reason: str


class ReplayFinished(LedgerEvent):
    """A replay ended: ``outcome`` is ``completed``, ``completed with failures`` or ``dry run``."""

    run_id: str
    outcome: str
    applied: int
    failed: int
    detail: str


# --- backfill (one stream per run, see :mod:`ledger.replay_backfill`) -----------------------


class BackfillStarted(LedgerEvent):
    """A backfill began: every account and company is read, mapped and synced."""

    run_id: str
    requested_by: str


class BackfillRead(LedgerEvent):
    """Every account and company was read (and recorded as observed) for a backfill."""

    run_id: str
    accounts: int
    companies: int


class BackfillKeysDecided(LedgerEvent):
    """The backfill decided the identifier values ``keys`` (sorted; the last is ``through``):
    mappings made or kept, and every mapped attribute planned under the rules."""

    run_id: str
    keys: list[str]
    through: str


class BackfillFinished(LedgerEvent):
    """A backfill ended (``outcome``: ``completed`` or ``completed with failures``)."""

    run_id: str
    outcome: str
    detail: str
