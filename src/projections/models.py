"""The read-model tables (SQLAlchemy Core), kept in the ledger's own database.

Every row derives from ledger events alone, keyed by the ledger position (notification id) of
the event it comes from, so a page applied twice cannot insert twice, and a rebuild from scratch
yields the very same rows. Times are microseconds since the Unix epoch (UTC) in ``*_us``
columns: exact, portable between SQLite and PostgreSQL, and cheap to index.

``projection_tracking`` holds the position the tables reflect; it is updated in the same
transaction as the rows (see :mod:`projections.projector`).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

#: Bump when a table changes: projections of another version are dropped and rebuilt.
SCHEMA_VERSION = 2

metadata = MetaData()

tracking = Table(
    "projection_tracking",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("schema_version", Integer, nullable=False),
)

#: One row per ledger transaction (its ``LedgerAdvanced``): instant → position.
transactions = Table(
    "proj_transactions",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("summary", Text, nullable=False),
    Column("events", Integer, nullable=False),
    Index("ix_proj_transactions_at", "at_us", "position"),
)

configs = Table(
    "proj_configs",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("identifier_field", String(255), nullable=False),
    Column("previous_identifier_field", String(255), nullable=False),
    Column("config", JSON, nullable=False),
)

#: Identity mappings as spans of ledger positions: in force from ``mapped_position`` until
#: ``unmapped_position`` (exclusive; NULL while in force).
mappings = Table(
    "proj_mappings",
    metadata,
    Column("company_id", String(255), primary_key=True),
    Column("mapped_position", BigInteger, primary_key=True, autoincrement=False),
    Column("intercom_id", String(255), nullable=False),
    Column("salesforce_id", String(255), nullable=False),
    Column("identifier_field", String(255), nullable=False),
    Column("config_version", Integer, nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("cause", String(128), nullable=False),
    Column("mapped_at_us", BigInteger, nullable=False),
    Column("unmapped_position", BigInteger),
    Column("unmapped_at_us", BigInteger),
    Column("unmap_reason", Text),
    Column("unmap_cause", String(128)),
    Index("ix_proj_mappings_intercom", "intercom_id", "mapped_position"),
    Index("ix_proj_mappings_salesforce", "salesforce_id", "mapped_position"),
)

#: What the ledger knows of each record now: its key, liveness, and whether it is ignored.
records = Table(
    "proj_records",
    metadata,
    Column("system", String(16), primary_key=True),
    Column("record_id", String(255), primary_key=True),
    Column("company_id", String(255)),
    Column("deleted", Boolean, nullable=False),
    Column("is_person_account", Boolean, nullable=False),
    Column("last_position", BigInteger, nullable=False),
    Column("last_at_us", BigInteger, nullable=False),
    Column("ignored_reason", Text),
    Column("ignored_cause", String(128)),
    Column("ignored_position", BigInteger),
    Column("ignored_at_us", BigInteger),
    Index("ix_proj_records_key", "company_id", "system"),
    Index("ix_proj_records_ignored", "ignored_position"),
)

#: Per-record timelines: one or more entries per event (``seq`` orders them).
timeline = Table(
    "proj_timeline",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("system", String(16), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("company_id", String(255)),
    Column("at_us", BigInteger, nullable=False),
    Column("event", String(64), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("category", String(32), nullable=False),
    Column("field", String(255)),
    Column("summary", Text, nullable=False),
    Column("cause", String(128)),
    Column("config_version", Integer),
    Column("details", JSON, nullable=False),
    Index("ix_proj_timeline_record", "system", "record_id", "position", "seq"),
    Index("ix_proj_timeline_key", "company_id", "position"),
    Index("ix_proj_timeline_ref", "ref"),
)

#: The write log: every applied write.
writes = Table(
    "proj_writes",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("write_id", String(64), nullable=False),
    Column("system", String(16), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("company_id", String(255), nullable=False),
    Column("field", String(255), nullable=False),
    Column("source_system", String(16), nullable=False),
    Column("source_record_id", String(255), nullable=False),
    Column("source_field", String(255), nullable=False),
    Column("source_value", JSON),
    Column("before", JSON),
    Column("value", JSON),
    Column("overwrite", Boolean, nullable=False),
    Column("skip_if_source_empty", Boolean, nullable=False),
    Column("skip_if_destination_has_value", Boolean, nullable=False),
    Column("config_version", Integer, nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("cause", String(128), nullable=False),
    Column("planned_position", BigInteger),
    Column("api_call", JSON, nullable=False),
    Index("ix_proj_writes_at", "at_us", "position"),
    Index("ix_proj_writes_field", "field", "overwrite", "position"),
    Index("ix_proj_writes_overwrite", "overwrite", "position"),
    Index("ix_proj_writes_record", "system", "record_id", "position"),
    Index("ix_proj_writes_key", "company_id", "position"),
)

#: Every planned write and where it stands.
write_status = Table(
    "proj_write_status",
    metadata,
    Column("write_id", String(64), primary_key=True),
    Column("system", String(16), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("field", String(255), nullable=False),
    Column("value", JSON),
    Column("source_system", String(16), nullable=False),
    Column("source_record_id", String(255), nullable=False),
    Column("company_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("rule", String(64)),
    Column("error", Text),
    Column("config_version", Integer, nullable=False),
    Column("planned_position", BigInteger, nullable=False),
    Column("planned_at_us", BigInteger, nullable=False),
    Column("closed_position", BigInteger),
    Column("closed_at_us", BigInteger),
    Index("ix_proj_write_status_dest", "system", "record_id", "status"),
    Index("ix_proj_write_status_source", "source_system", "source_record_id", "status"),
)

rejected = Table(
    "proj_rejected",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("system", String(16), nullable=False),
    Column("record_id", String(255), nullable=False),
    Column("company_id", String(255), nullable=False),
    Column("field", String(255), nullable=False),
    Column("source_field", String(255), nullable=False),
    Column("source_value", JSON),
    Column("reason", Text, nullable=False),
    Column("config_version", Integer, nullable=False),
    Column("cause", String(128), nullable=False),
    Index("ix_proj_rejected_at", "at_us", "position"),
    Index("ix_proj_rejected_field", "field", "at_us"),
)

api_usage = Table(
    "proj_api_usage",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("at_us", BigInteger, nullable=False),
    Column("system", String(32), nullable=False),
    Column("used", BigInteger, nullable=False),
    Column("limit", BigInteger, nullable=False),
    Column("allocation", BigInteger),
    Column("tier", String(32), nullable=False),
    Index("ix_proj_api_usage_at", "system", "at_us", "position"),
)

#: The read-model tables (everything but the tracking table), in dependency-free order.
READ_MODELS = (
    transactions,
    configs,
    mappings,
    records,
    timeline,
    writes,
    write_status,
    rejected,
    api_usage,
)
