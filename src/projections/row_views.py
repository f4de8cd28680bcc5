"""Read-model rows as the audit API's views (:mod:`projections.views`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from projections import models as m
from projections.page import MAPPING_RULES, from_us, to_us
from projections.views import MappingView, TimelineEntry, WriteEntry, WriteStatusView


def position_at(conn: Connection, instant: datetime) -> int:
    """The ledger position right after the last transaction committed at or before
    ``instant`` (0 before the first)."""
    t = m.transactions
    row = conn.execute(
        select(t.c.position)
        .where(t.c.at_us <= to_us(instant))
        .order_by(t.c.at_us.desc(), t.c.position.desc())
        .limit(1)
    ).first()
    return 0 if row is None else int(row.position)


def timed(row: Any) -> dict[str, Any]:
    data = dict(row)
    data["at"] = from_us(data.pop("at_us"))
    return data


def mapping_view(row: Any, open_at: int | None = None) -> MappingView:
    """A mapping span; seen as of ``open_at``, a later end is not shown."""
    ended = row["unmapped_position"] is not None and (
        open_at is None or row["unmapped_position"] <= open_at
    )
    return MappingView(
        company_id=row["company_id"],
        intercom_id=row["intercom_id"],
        salesforce_id=row["salesforce_id"],
        identifier_field=row["identifier_field"],
        config_version=row["config_version"],
        trigger=row["trigger"],
        cause=row["cause"],
        mapped_at=from_us(row["mapped_at_us"]),
        mapped_position=row["mapped_position"],
        unmapped_at=from_us(row["unmapped_at_us"]) if ended else None,
        unmapped_position=row["unmapped_position"] if ended else None,
        unmap_reason=row["unmap_reason"] if ended else None,
        unmap_cause=row["unmap_cause"] if ended else None,
    )


def timeline_entry(row: Any) -> TimelineEntry:
    data = timed(row)
    for private in ("system", "record_id", "company_id", "ref"):
        data.pop(private)
    return TimelineEntry(**data)


#: references resolved per query (well under SQLite's bound-parameter limit)
CAUSES_PER_QUERY = 500


def with_causes(conn: Connection, entries: list[TimelineEntry]) -> list[TimelineEntry]:
    """``entries`` with each cause's position and summary, looked up by reference."""
    refs = sorted({e.cause for e in entries if e.cause})
    found: dict[str, tuple[int, str]] = {}
    t = m.timeline
    for i in range(0, len(refs), CAUSES_PER_QUERY):
        chunk = refs[i : i + CAUSES_PER_QUERY]
        rows = conn.execute(
            select(t.c.ref, t.c.position, t.c.summary)
            .where(t.c.ref.in_(chunk))
            .order_by(t.c.ref, t.c.position, t.c.seq)
        )
        for row in rows:
            found.setdefault(row.ref, (row.position, row.summary))
    return [
        e.model_copy(update={"cause_position": hit[0], "cause_summary": hit[1]})
        if e.cause and (hit := found.get(e.cause))
        else e
        for e in entries
    ]


def write_entry(row: Any) -> WriteEntry:
    data = timed(row)
    data["rules"] = [r for r in MAPPING_RULES if data.pop(r)]
    return WriteEntry(**data)


def status_view(row: Any) -> WriteStatusView:
    data = dict(row)
    data["planned_at"] = from_us(data.pop("planned_at_us"))
    closed = data.pop("closed_at_us")
    data["closed_at"] = None if closed is None else from_us(closed)
    return WriteStatusView(**data)


def record_row(conn: Connection, system: str, record_id: str) -> dict[str, Any] | None:
    t = m.records
    row = conn.execute(select(t).where(t.c.system == system, t.c.record_id == record_id)).first()
    return None if row is None else dict(row._mapping)
