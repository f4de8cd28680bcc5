"""The review pages' sign-in sessions, kept in this process's memory, and their CSRF tokens.

Signing in with a key (``POST /review/login``) opens a :class:`ReviewSession`: the browser's
cookie holds only a random session id (:data:`adapters.http.auth.COOKIE`); the key itself is
never sent back to the browser. The session remembers who signed in (:attr:`ReviewSession.name`,
a fingerprint of the key, and the key's scopes) and a CSRF token for the sign-out form. It ends
after :data:`IDLE` without use, :data:`LIFETIME` after sign-in, or at sign out; a restart of the
process ends every session (they are in memory: each process of a deployment has its own, so a
load balancer in front of several needs sticky sessions for the review pages).

The sign-in form has no session yet: its CSRF token is a random value set both in a cookie
(:data:`LOGIN_COOKIE`) and in the form, which must agree (double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

__all__ = [
    "IDLE",
    "LIFETIME",
    "LOGIN_COOKIE",
    "MAX_SESSIONS",
    "ReviewSession",
    "ReviewSessions",
    "fingerprint",
    "new_token",
    "same_token",
]

#: A session unused this long (seconds) has ended.
IDLE: Final = 8 * 3600.0
#: A session ends this long (seconds) after sign-in, used or not.
LIFETIME: Final = 24 * 3600.0
#: The most sessions kept at once; the least recently used one ends first.
MAX_SESSIONS: Final = 10_000
#: The sign-in form's CSRF cookie (double submit: the form carries the same value).
LOGIN_COOKIE: Final = "syncledger_review_login"


def new_token() -> str:
    """A random token (session ids, CSRF tokens): 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def same_token(presented: str | None, expected: str | None) -> bool:
    """Whether two tokens are present and equal (constant time)."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def fingerprint(key: str) -> str:
    """A name for a key that does not reveal it: ``key:`` and 8 hex digits of its SHA-256."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


@dataclass(frozen=True)
class ReviewSession:
    """Who signed in (``name``, ``scopes``), the sign-out form's ``csrf`` token, and when the
    session was opened and last used (monotonic seconds)."""

    name: str
    scopes: frozenset[str]
    csrf: str
    opened: float
    used: float


class ReviewSessions:
    """Session id → :class:`ReviewSession`, in memory, thread-safe (see the module docstring).

    ``clock`` is monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        *,
        idle: float = IDLE,
        lifetime: float = LIFETIME,
        limit: int = MAX_SESSIONS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.limit = limit
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, ReviewSession] = {}

    def open(self, name: str, scopes: frozenset[str]) -> str:
        """A new session for ``name`` with ``scopes``; returns its id (the cookie's value)."""
        now = self.clock()
        session_id = new_token()
        with self._lock:
            self._sweep(now)
            while len(self._sessions) >= self.limit:
                del self._sessions[next(iter(self._sessions))]  # the least recently used
            self._sessions[session_id] = ReviewSession(name, scopes, new_token(), now, now)
        return session_id

    def get(self, session_id: str | None) -> ReviewSession | None:
        """The live session ``session_id`` names (and mark it used), or ``None``."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.pop(session_id, None)
            if session is None or not self._live(session, now):
                return None
            session = replace(session, used=now)
            self._sessions[session_id] = session  # to the end: most recently used
            return session

    def close(self, session_id: str | None) -> bool:
        """End the session (sign out); whether there was one."""
        with self._lock:
            return self._sessions.pop(session_id or "", None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _live(self, session: ReviewSession, now: float) -> bool:
        return now - session.used < self.idle and now - session.opened < self.lifetime

    def _sweep(self, now: float) -> None:
        for session_id in [k for k, s in self._sessions.items() if not self._live(s, now)]:
            del self._sessions[session_id]
