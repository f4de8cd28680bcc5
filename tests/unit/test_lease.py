"""The SQLite one-service lock follows the database file's identity, not its path's text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.service.errors import ServiceError
from adapters.service.lease import sqlite_process_lock


@pytest.mark.parametrize("spelling", ["same", "symlink", "hardlink", "dotted", "relative"])
def test_the_lock_is_met_by_any_path_to_the_same_file(tmp_path: Path, spelling: str) -> None:
    database = tmp_path / "ledger.db"
    database.write_bytes(b"")
    other = {
        "same": database,
        "symlink": tmp_path / "link.db",
        "hardlink": tmp_path / "hard.db",
        "dotted": tmp_path / "." / ".." / tmp_path.name / "ledger.db",
        "relative": Path(os.path.relpath(database)),
    }[spelling]
    if spelling == "symlink":
        other.symlink_to(database)
    if spelling == "hardlink":
        other.hardlink_to(database)
    held = sqlite_process_lock(str(database))
    try:
        with pytest.raises(ServiceError, match="another syncledger service is already running"):
            sqlite_process_lock(str(other))
    finally:
        held.close()
    sqlite_process_lock(str(other)).close()  # free again once the holder is gone


def test_another_file_is_not_locked(tmp_path: Path) -> None:
    held = sqlite_process_lock(str(tmp_path / "a.db"))
    try:
        sqlite_process_lock(str(tmp_path / "b.db")).close()
    finally:
        held.close()
    assert (tmp_path / "a.db.serve.lock").read_text().strip() == str(os.getpid())
