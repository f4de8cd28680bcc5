"""The Salesforce simulator's sessions: which bearer tokens it accepts, and until when.

Without a session timeout the simulator behaves as it always did: the one ``token`` it was
given is the only session, every login (SOAP or OAuth) answers it, and it never expires.

With ``session_timeout`` seconds, sessions behave as Salesforce's do: every login opens a new
session with its own id (``<org id 15>!<random>``), the given ``token`` is a session opened when
the simulator starts, and a session idle for longer than the timeout is gone: the next call with
it is answered 401 ``INVALID_SESSION_ID`` (``Session expired or invalid``), as on Salesforce. A
call that is answered resets the idle time.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable

from adapters.simulators.salesforce_calls import SimulatorSettings

__all__ = ["Sessions"]


class Sessions:
    """Live sessions and when each was last used, on an injected wall clock; thread-safe.

    ``settings.token`` and ``settings.session_timeout`` are read when needed, so a test may
    replace the token (without a timeout, the old one is then refused).
    """

    def __init__(self, settings: SimulatorSettings, clock: Callable[[], float]) -> None:
        timeout = settings.session_timeout
        if timeout is not None and not timeout > 0:
            raise ValueError("session_timeout must be a number of seconds greater than 0")
        self._settings = settings
        self.timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._last_used: dict[str, float] = {}
        if timeout is not None:
            self._last_used[settings.token] = clock()

    def issue(self) -> str:
        """The session id a successful login answers (a new session when sessions expire)."""
        if self.timeout is None:
            return self._settings.token
        session_id = f"{self._settings.org_id[:15]}!{secrets.token_urlsafe(32)}"
        with self._lock:
            now = self._clock()
            self._last_used = {
                sid: last for sid, last in self._last_used.items() if now - last <= self.timeout
            }
            self._last_used[session_id] = now
        return session_id

    def use(self, session_id: str) -> bool:
        """Whether ``session_id`` is a live session; using one restarts its idle time."""
        if self.timeout is None:
            return secrets.compare_digest(session_id.encode(), self._settings.token.encode())
        with self._lock:
            last = self._last_used.get(session_id)
            if last is None:
                return False
            now = self._clock()
            if now - last > self.timeout:
                del self._last_used[session_id]
                return False
            self._last_used[session_id] = now
            return True

    def now(self) -> float:
        """The simulator's wall clock (seconds since the epoch): idle times, JWT ``exp``."""
        return self._clock()

    def seconds_valid(self, default: int) -> int:
        """What a login reports as ``sessionSecondsValid``."""
        return default if self.timeout is None else max(1, int(self.timeout))
