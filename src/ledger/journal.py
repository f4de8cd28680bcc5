"""A journal of changes to dictionaries, so a block of them can be undone at once.

:class:`ledger.state.LedgerState` changes its dictionaries only through :meth:`Journal._put`
and :meth:`Journal._pop`; inside :meth:`Journal.transaction` each change notes the value it
replaced, and an exception in the block puts every one back, newest first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_MISSING = object()


class Journal:
    """Journalled changes to dictionaries (see the module docstring)."""

    def __init__(self) -> None:
        self._journal: list[tuple[dict[Any, Any], Any, Any]] | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Journal every change made in the block; undo them all if the block raises."""
        if self._journal is not None:
            raise RuntimeError("nested ledger state transaction")
        self._journal = []
        try:
            yield
        except BaseException:
            journal, self._journal = self._journal, None
            for d, key, old in reversed(journal):
                if old is _MISSING:
                    d.pop(key, None)
                else:
                    d[key] = old
            raise
        else:
            self._journal = None

    def _put(self, d: dict[Any, Any], key: Any, value: Any) -> None:
        if self._journal is not None:
            self._journal.append((d, key, d.get(key, _MISSING)))
        d[key] = value

    def _pop(self, d: dict[Any, Any], key: Any) -> None:
        if key in d:
            if self._journal is not None:
                self._journal.append((d, key, d[key]))
            del d[key]
