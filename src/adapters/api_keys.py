"""HTTP API keys and the scopes each grants, as written in ``SYNCLEDGER_API_KEYS``.

``KEY=scope+scope,KEY=scope``; :class:`ApiKeys` parses it, never shows a key (``repr`` counts
them) and looks a presented key up in constant time. Re-exported by :mod:`adapters.settings`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["API_SCOPES", "ApiKeys"]

API_SCOPES: tuple[str, ...] = ("audit:read", "sync:operate", "replay:execute")
"""The scopes an API key can grant, as written in ``SYNCLEDGER_API_KEYS``."""

_API_KEY_RE = re.compile(r"[!-~]+")  # printable ASCII, no spaces


class ApiKeys(Mapping[str, frozenset[str]]):
    """API key → the scopes it grants. ``repr``/``str`` show only how many keys there are.

    Look a presented key up with :meth:`scopes_for` (constant-time comparison) rather than
    ``keys[presented]``.
    """

    __slots__ = ("_scopes",)

    def __init__(self, scopes: Mapping[str, Iterable[str]]) -> None:
        self._scopes: dict[str, frozenset[str]] = {}
        for number, (key, granted) in enumerate(scopes.items(), start=1):
            names = frozenset(granted)
            if not names:
                raise ValueError(f"entry {number} grants no scopes")
            unknown = sorted(names.difference(API_SCOPES))
            if unknown:
                raise ValueError(
                    f"entry {number} has unknown scope {unknown[0]!r} "
                    f"(valid scopes: {', '.join(API_SCOPES)})"
                )
            self._scopes[key] = names

    @classmethod
    def parse(cls, text: str) -> ApiKeys:
        """Parse ``KEY=scope+scope,KEY=scope``; errors name entries by number, never by key.

        A key is printable ASCII without spaces or commas; it may contain ``=`` (base64), since
        the scopes start after the last ``=``.
        """
        scopes: dict[str, frozenset[str]] = {}
        for number, entry in enumerate(text.split(","), start=1):
            key, sep, granted = entry.strip().rpartition("=")
            if not sep or not key:
                raise ValueError(f"entry {number} is not KEY=scope+scope")
            if not _API_KEY_RE.fullmatch(key):
                raise ValueError(f"entry {number} has a key with spaces or non-ASCII characters")
            if key in scopes:
                raise ValueError(f"entry {number} repeats the key of an earlier entry")
            names = [name.strip() for name in granted.split("+")]
            if not all(names):
                raise ValueError(f"entry {number} is not KEY=scope+scope")
            unknown = [name for name in names if name not in API_SCOPES]
            if unknown:
                raise ValueError(
                    f"entry {number} has unknown scope {unknown[0]!r} "
                    f"(valid scopes: {', '.join(API_SCOPES)})"
                )
            scopes[key] = frozenset(names)
        return cls(scopes)

    def scopes_for(self, presented: str) -> frozenset[str]:
        """The scopes of ``presented`` (empty when it is no key), compared in constant time."""
        candidate = presented.encode("utf-8", "surrogatepass")
        found: frozenset[str] = frozenset()
        for key, granted in self._scopes.items():
            if hmac.compare_digest(candidate, key.encode()):
                found = granted
        return found

    def __getitem__(self, key: str) -> frozenset[str]:
        return self._scopes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._scopes)

    def __len__(self) -> int:
        return len(self._scopes)

    def __repr__(self) -> str:
        count = len(self._scopes)
        return f"ApiKeys(<{count} key{'' if count == 1 else 's'}>)"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.is_instance_schema(cls)
