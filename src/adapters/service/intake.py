"""Webhook intake: verify, parse and durably keep Intercom webhooks.

:class:`WebhookIntake` verifies the signature on the raw body (constant time) before parsing,
then hands the notification to one writer thread that keeps every notification waiting at that
moment in the ledger's inbox in one transaction (group commit), and only then is the delivery
answered 200. A crash after the answer loses nothing; a crash before it makes Intercom deliver
again, and the repeat is dropped by its id.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from adapters.intercom.webhooks import (
    Notification,
    WebhookRejected,
    parse_notification,
    verify_signature,
)
from adapters.service.errors import ServiceError
from ledger import events as ev
from ledger.application import LedgerApp

log = logging.getLogger("syncledger")

#: The largest webhook body accepted (Intercom's company notifications are a few KiB).
MAX_WEBHOOK_BYTES = 1_048_576


# --- webhook intake ------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """How a webhook delivery is answered: HTTP ``status`` and a short ``detail``."""

    status: int
    detail: str


class WebhookIntake:
    """Verifies, parses and durably keeps Intercom webhooks (see the module docstring).

    :meth:`check` is the cheap part, done on the request's thread; :meth:`keep` queues a valid
    notification for the writer thread and returns a future of ``"accepted"`` or
    ``"duplicate"``. ``on_kept`` is called after each group commit (it wakes the worker).
    """

    def __init__(
        self,
        app: LedgerApp,
        client_secret: str,
        *,
        on_kept: Callable[[], None] = lambda: None,
        max_batch: int = 1000,
    ) -> None:
        self.app = app
        self._secret = client_secret
        self._on_kept = on_kept
        self._max_batch = max_batch
        Job = tuple[Notification, concurrent.futures.Future[str]]
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.kept = 0
        self.duplicates = 0
        self.rejected = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Keep what is queued, then stop the writer."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def too_large(self) -> Verdict:
        """The answer to a body over :data:`MAX_WEBHOOK_BYTES` (counted as rejected)."""
        self.rejected += 1
        return Verdict(413, f"body larger than {MAX_WEBHOOK_BYTES} bytes")

    def check(self, raw_body: bytes, signature: str | None) -> Notification | Verdict:
        """The notification in ``raw_body``, or the answer refusing it (nothing is kept)."""
        if len(raw_body) > MAX_WEBHOOK_BYTES:
            return self.too_large()
        if not verify_signature(raw_body, signature, self._secret):
            self.rejected += 1
            return Verdict(401, "missing or invalid X-Hub-Signature")
        try:
            notification = parse_notification(raw_body)
        except WebhookRejected as exc:
            self.rejected += 1
            return Verdict(400, exc.reason)
        if notification.fact is None:
            return Verdict(200, f"ignored: topic {notification.topic} is not about companies")
        return notification

    def keep(self, notification: Notification) -> concurrent.futures.Future[str]:
        """Queue ``notification`` for the ledger's inbox; the future resolves once stored."""
        if self._thread is None:
            raise ServiceError("the webhook intake is not running")
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._queue.put((notification, future))
        return future

    @property
    def alive(self) -> bool:
        """Whether the writer thread is running (``/health`` reports it)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def waiting(self) -> int:
        """Notifications queued for the writer and not stored yet."""
        return self._queue.qsize()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                self._store(batch)
            except Exception:  # never let one batch end the writer: later webhooks need it
                log.exception("the webhook writer failed on a batch of %d; going on", len(batch))
                for _, future in batch:
                    _settle(future, exception=ServiceError("the webhook was not stored"))

    def _store(self, batch: list[tuple[Notification, concurrent.futures.Future[str]]]) -> None:
        try:
            recorded = self.app.receive((n.id, n.fact) for n, _ in batch if n.fact is not None)
        except Exception as exc:
            if len(batch) > 1:
                # One notification the ledger cannot keep must not cost the others theirs:
                # keep each alone (a ledger that is down refuses each, as it refused the batch).
                log.warning("could not keep %d webhooks at once (%s); one by one", len(batch), exc)
                for item in batch:
                    self._store([item])
                return
            # the ledger is unavailable or refuses this one: Intercom will deliver it again
            log.warning("could not keep webhook %s: %s", batch[0][0].id, exc)
            _settle(batch[0][1], exception=exc)
            return
        new = {e.notification_id for e in recorded.events if isinstance(e, ev.NotificationReceived)}
        for notification, future in batch:
            if notification.id in new:
                new.discard(notification.id)  # a second copy in the same batch is a duplicate
                self.kept += 1
                _settle(future, "accepted")
            else:
                self.duplicates += 1
                _settle(future, "duplicate")
        self._on_kept()


def _settle(
    future: concurrent.futures.Future[str],
    result: str = "",
    *,
    exception: BaseException | None = None,
) -> None:
    """Resolve ``future`` unless its request gave up waiting (it was answered 503 and cancelled
    the future). The notification is stored all the same; Intercom's redelivery of it is then
    a duplicate, dropped by its id: nothing lost, nothing doubled."""
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass
