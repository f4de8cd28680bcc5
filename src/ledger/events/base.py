"""The base of every ledger event, and the stamp that places one in its stream.

Every event class is a frozen dataclass (``eventsourcing`` makes it one) and is declared as
one to the type checker (:func:`typing.dataclass_transform`), so each construction is checked
field by field: ``ev.NotSynced(**stamp, system=..., reason=..., key=..., cause=...)``. Its
stored topic is ``syncledger:<class name>``, whichever module defines it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypedDict, dataclass_transform
from uuid import UUID

from eventsourcing.domain import DomainEvent
from eventsourcing.utils import register_topic

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
