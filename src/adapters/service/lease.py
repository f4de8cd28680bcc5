"""Leases: who may run sync cycles.

Only the lease holder runs cycles, so two processes never send the same write. On PostgreSQL,
:class:`PostgresLease` is a session advisory lock (a second ``serve`` takes over when the first
dies); on SQLite, :func:`sqlite_process_lock` refuses a second ``serve`` at start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import IO, Any, Protocol

from adapters.service.errors import ServiceError

log = logging.getLogger("syncledger")


# --- leases --------------------------------------------------------------------------------


class Lease(Protocol):
    """Whether this process may run sync cycles now."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


class ProcessLease:
    """Always held: the process is the only one (SQLite, memory, tests)."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class PostgresLease:
    """A session-level advisory lock on the ledger's PostgreSQL database: held by one process
    at a time; released when its connection ends (also when the process dies)."""

    def __init__(self, conninfo: str, name: str) -> None:
        self._conninfo = conninfo
        self._key = zlib.crc32(f"syncledger:{name}".encode()) - 2**31
        self._conn: Any = None

    def acquire(self) -> bool:
        import psycopg

        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT 1")
                return True
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot reach PostgreSQL for the sync lease: %s", exc)
            self.release()
            return False
        if row and row[0]:
            log.info("holding the sync lease: this process runs the sync cycles")
            return True
        self.release()
        return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def sqlite_process_lock(database_path: str) -> IO[str]:
    """Lock ``<database>.serve.lock`` for this process's lifetime; refuse if another holds it."""
    lock_path = Path(f"{database_path}.serve.lock")
    handle = lock_path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ServiceError(
            f"another syncledger service is already running on the SQLite ledger {database_path} "
            f"(it holds {lock_path}); SQLite allows one service process: stop the other one, "
            "or use PostgreSQL (SYNCLEDGER_DATABASE_URL=postgresql+psycopg://...) to run several"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
