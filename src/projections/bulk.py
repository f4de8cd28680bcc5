"""Writing read-model rows fast, on the DB-API connection under a SQLAlchemy transaction.

SQLAlchemy Core spends most of a page's time building parameters row by row; here each table's
``INSERT`` and upsert are compiled once, JSON columns are encoded by ``json.dumps`` (as SQLAlchemy
would: read back through the models, the rows are the same), and rows go to the driver in one
``executemany`` — or, for new rows on PostgreSQL, through ``COPY … FROM STDIN``. The statements
run on the connection's own transaction, so the tracking position still commits with them.

For rebuilds, :func:`drop_indexes` and :func:`create_indexes` take the secondary indexes off the
read models while they are refilled and put them back once (a sort instead of a b-tree insert
per row).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Index, Table, text
from sqlalchemy.exc import DBAPIError

from projections import models as m

Row = dict[str, Any]


class TableWriter:
    """One table's precompiled statements for a dialect (``?`` or ``%s`` parameters)."""

    def __init__(self, table: Table, conn: Connection) -> None:
        quote = conn.dialect.identifier_preparer.quote
        self.table = table
        self.postgres = conn.dialect.name == "postgresql"
        names = [c.name for c in table.columns]
        self.getter: Callable[[Row], tuple[Any, ...]] = itemgetter(*names)
        self.json = [i for i, c in enumerate(table.columns) if isinstance(c.type, JSON)]
        columns = ", ".join(quote(n) for n in names)
        mark = "%s" if self.postgres else "?"
        values = ", ".join(mark for _ in names)
        self.insert_sql = f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({values})"
        self.copy_sql = f"COPY {quote(table.name)} ({columns}) FROM STDIN"
        keys = [c.name for c in table.primary_key.columns]
        rest = ", ".join(f"{quote(n)} = excluded.{quote(n)}" for n in names if n not in keys)
        self.upsert_sql = (
            f"{self.insert_sql} ON CONFLICT ({', '.join(quote(k) for k in keys)}) "
            f"DO UPDATE SET {rest}"
        )

    def params(self, rows: Sequence[Row]) -> list[tuple[Any, ...]]:
        getter, positions = self.getter, self.json
        if not positions:
            return [getter(r) for r in rows]
        dumps = json.dumps
        out: list[tuple[Any, ...]] = []
        for r in rows:
            values = list(getter(r))
            for i in positions:
                values[i] = dumps(values[i])
            out.append(tuple(values))
        return out

    def insert(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert new rows (an existing key is an IntegrityError, as with a plain INSERT)."""
        if not rows:
            return
        params = self.params(rows)
        if not self.postgres:
            conn.exec_driver_sql(self.insert_sql, params)
            return
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(self.copy_sql) as copy:
                for values in params:
                    copy.write_row(values)
        except conn.dialect.loaded_dbapi.Error as exc:
            # as if SQLAlchemy had run it: callers handle one family of errors
            raise DBAPIError.instance(
                self.copy_sql, None, exc, conn.dialect.loaded_dbapi.Error
            ) from exc
        finally:
            cursor.close()

    def upsert(self, conn: Connection, rows: Sequence[Row]) -> None:
        """Insert rows or replace the ones with the same primary key."""
        if rows:
            conn.exec_driver_sql(self.upsert_sql, self.params(rows))


class Writers:
    """The writers of every read model, built on first use for a connection's dialect."""

    def __init__(self) -> None:
        self._by_dialect: dict[str, dict[str, TableWriter]] = {}

    def __call__(self, conn: Connection, table: Table) -> TableWriter:
        tables = self._by_dialect.setdefault(conn.dialect.name, {})
        writer = tables.get(table.name)
        if writer is None:
            writer = tables[table.name] = TableWriter(table, conn)
        return writer


def secondary_indexes() -> list[Index]:
    return [ix for table in m.READ_MODELS for ix in sorted(table.indexes, key=_name)]


def _name(ix: Index) -> str:
    return str(ix.name)


def drop_indexes(conn: Connection) -> None:
    """Drop the read models' secondary indexes (primary keys stay: pages look rows up by them)."""
    quote = conn.dialect.identifier_preparer.quote
    for ix in secondary_indexes():
        conn.execute(text(f"DROP INDEX IF EXISTS {quote(str(ix.name))}"))


def create_indexes(conn: Connection) -> None:
    """Create the secondary indexes that are missing (after a rebuild, or one cut short)."""
    for ix in secondary_indexes():
        ix.create(conn, checkfirst=True)
