"""Leases: who may run sync cycles.

Only the lease holder runs cycles, so two processes never send the same write. On PostgreSQL,
:class:`PostgresLease` is a session advisory lock (a second ``serve`` takes over when the first
dies); on SQLite, :func:`sqlite_process_lock` refuses a second ``serve`` at start.
"""

from __future__ import annotations

import contextlib
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


class ProcessLock:
    """An exclusive lock on a SQLite ledger's file, held until :meth:`close`.

    The lock is taken on the database file itself (``flock``), so it follows the file's
    identity (device and inode): a symlink, a hard link or another spelling of the path meets
    the same lock. SQLite's own locks are ``fcntl`` byte-range locks, which ``flock`` does not
    touch on Linux. ``<database>.serve.lock`` beside the resolved file names the holder's pid,
    for people.
    """

    def __init__(self, database: IO[bytes], note: Path) -> None:
        self._database = database
        self.note = note

    def close(self) -> None:
        self._database.close()


def sqlite_process_lock(database_path: str) -> ProcessLock:
    """Lock the SQLite ledger at ``database_path`` for this process's lifetime; refuse with
    :class:`ServiceError` if another process holds it (whatever path that one used)."""
    real = Path(os.path.realpath(database_path))
    handle = real.open("a+b")  # an empty file is an empty SQLite database
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = _holder(real)
        raise ServiceError(
            f"another syncledger service is already running on the SQLite ledger {database_path} "
            f"(process {holder} holds {real}); SQLite allows one service process: stop the other "
            "one, or use PostgreSQL (SYNCLEDGER_DATABASE_URL=postgresql+psycopg://...) to run "
            "several"
        ) from None
    note = Path(f"{real}.serve.lock")
    with contextlib.suppress(OSError):  # a read-only folder: the lock holds without the note
        note.write_text(f"{os.getpid()}\n", encoding="utf-8")
    return ProcessLock(handle, note)


def _holder(real: Path) -> str:
    try:
        return Path(f"{real}.serve.lock").read_text(encoding="utf-8").strip() or "?"
    except OSError:
        return "?"
