"""The projector: applies the ledger's notification log to the read-model tables, exactly once.

Each page of events is applied in one database transaction together with the tracking position
(table ``projection_tracking``), so a crash before the commit leaves neither rows nor position
behind, and the next run starts again from the last committed page.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

from ledger.application import LedgerApp

#: Called with the number of events applied so far and the ledger's last position.
Progress = Callable[[int, int], None]


class Projector:
    """Keeps the read models of one ledger current. Build with :meth:`open`."""

    def __init__(self, ledger: LedgerApp, engine: Engine, *, page_size: int = 1000) -> None:
        self.ledger = ledger
        self.engine = engine
        self.page_size = page_size

    @classmethod
    def open(cls, ledger: LedgerApp, database_url: str) -> Projector:
        """The projector for ``ledger``, with its tables in the ledger's database
        (``database_url`` as for the ledger; ``memory://`` keeps them in memory)."""
        raise NotImplementedError

    @property
    def position(self) -> int:
        """The ledger position the read models reflect."""
        raise NotImplementedError

    def catch_up(self, progress: Progress | None = None) -> int:
        """Apply every event recorded after :attr:`position`; return how many were applied.

        Safe to call from several threads or processes at once: each page is applied once."""
        raise NotImplementedError

    def rebuild(self, progress: Progress | None = None) -> int:
        """Empty the read models and apply the whole ledger again; return the event count."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
