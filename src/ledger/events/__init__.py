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

The classes live in modules by subject (:mod:`~ledger.events.base`,
:mod:`~ledger.events.records`, :mod:`~ledger.events.identity`, :mod:`~ledger.events.writes`,
:mod:`~ledger.events.system`, :mod:`~ledger.events.runs`); use them from here, as
``from ledger import events as ev``. Importing this package registers every topic.
"""

from __future__ import annotations

from ledger.events.base import (
    EVENT_CLASSES,
    INTERCOM,
    SALESFORCE,
    LedgerEvent,
    Stamp,
)
from ledger.events.identity import (
    UNMAP_REASONS,
    IdentityMapped,
    IdentityUnmapped,
)
from ledger.events.records import (
    AccountCreated,
    AccountDeleted,
    AccountFact,
    AccountIdentifierChanged,
    AccountObserved,
    AccountUpdated,
    CompanyCreated,
    CompanyDeleted,
    CompanyFact,
    CompanyObserved,
    CompanyUpdated,
    EchoRecognised,
    LookupAnswered,
    NotSynced,
    RecordIgnored,
)
from ledger.events.runs import (
    BackfillFinished,
    BackfillKeysDecided,
    BackfillRead,
    BackfillStarted,
    ReplayBatchApplied,
    ReplayBatchPlanned,
    ReplayFinished,
    ReplayPaused,
    ReplayStarted,
)
from ledger.events.system import (
    ApiUsageObserved,
    ConfigurationApplied,
    LedgerAdvanced,
    NotificationReceived,
    NotificationsTaken,
    ResyncCompleted,
    ResyncNeeded,
)
from ledger.events.writes import (
    SKIP_RULES,
    SyncPlanned,
    WriteApplied,
    WriteEvent,
    WriteFailed,
    WriteSkipped,
)

__all__ = [
    "EVENT_CLASSES",
    "INTERCOM",
    "SALESFORCE",
    "SKIP_RULES",
    "UNMAP_REASONS",
    "AccountCreated",
    "AccountDeleted",
    "AccountFact",
    "AccountIdentifierChanged",
    "AccountObserved",
    "AccountUpdated",
    "ApiUsageObserved",
    "BackfillFinished",
    "BackfillKeysDecided",
    "BackfillRead",
    "BackfillStarted",
    "CompanyCreated",
    "CompanyDeleted",
    "CompanyFact",
    "CompanyObserved",
    "CompanyUpdated",
    "ConfigurationApplied",
    "EchoRecognised",
    "IdentityMapped",
    "IdentityUnmapped",
    "LedgerAdvanced",
    "LedgerEvent",
    "LookupAnswered",
    "NotSynced",
    "NotificationReceived",
    "NotificationsTaken",
    "RecordIgnored",
    "ReplayBatchApplied",
    "ReplayBatchPlanned",
    "ReplayFinished",
    "ReplayPaused",
    "ReplayStarted",
    "ResyncCompleted",
    "ResyncNeeded",
    "Stamp",
    "SyncPlanned",
    "WriteApplied",
    "WriteEvent",
    "WriteFailed",
    "WriteSkipped",
]
