"""Signed Intercom webhook delivery for the simulator, from a background worker thread.

Each company change becomes a ``notification_event`` (reference B8) posted to one URL with
``X-Hub-Signature: sha1=<HMAC-SHA1 of the raw body with the client secret>``. Delivery never
blocks the API call that caused it: :meth:`WebhookDispatcher.publish` only enqueues. A failed
attempt (non-2xx or connection error) is retried with exponential backoff; each retry carries a
higher ``delivery_attempts``. Optional modes make the receiver's life realistically hard:
``duplicate`` sends every notification two or three times, ``shuffle`` holds back a few and sends
them in random order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

JSON = dict[str, Any]

USER_AGENT = "intercom-parrot-service-client/1.0"


def sign(body: bytes, client_secret: str) -> str:
    """The ``X-Hub-Signature`` value for ``body``: ``sha1=`` + hex HMAC-SHA1 with the secret."""
    digest = hmac.new(client_secret.encode(), body, hashlib.sha1).hexdigest()
    return f"sha1={digest}"


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery attempt: what was sent, and how the receiver answered."""

    notification_id: str
    topic: str
    item_id: str
    attempt: int
    status_code: int | None
    error: str | None
    sent_at: float
    body: bytes

    @property
    def ok(self) -> bool:
        """Whether the receiver acknowledged with a 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    def to_json(self) -> JSON:
        """A summary without the body, for ``GET /_sim/webhooks``."""
        return {
            "notification_id": self.notification_id,
            "topic": self.topic,
            "item_id": self.item_id,
            "attempt": self.attempt,
            "status_code": self.status_code,
            "error": self.error,
            "sent_at": self.sent_at,
        }


@dataclass
class _Notification:
    envelope: JSON
    attempts: int = 0


class WebhookDispatcher:
    """Queue of notifications for one webhook URL and the worker thread that delivers them.

    :meth:`start` and :meth:`stop` bracket the worker (the simulator app calls them from its
    lifespan); notifications published while it is stopped wait in the queue.
    """

    def __init__(
        self,
        url: str,
        *,
        app_id: str,
        client_secret: str | None,
        now: Callable[[], float] = time.time,
        seed: int | None = None,
        duplicate: bool = False,
        shuffle: bool = False,
        on_delivery: Callable[[WebhookDelivery], None] | None = None,
        max_attempts: int = 4,
        backoff: float = 0.1,
        shuffle_batch: int = 5,
        shuffle_hold: float = 0.05,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._app_id = app_id
        self._secret = client_secret
        self._now = now
        self._rng = random.Random(seed)
        self._duplicate = duplicate
        self._shuffle = shuffle
        self._on_delivery = on_delivery
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._shuffle_batch = shuffle_batch
        self._shuffle_hold = shuffle_hold
        self._timeout = timeout
        self._queue: queue.Queue[_Notification | None] = queue.Queue()
        self._cond = threading.Condition()
        self._pending = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, topic: str, item: JSON) -> None:
        """Enqueue a ``notification_event`` for ``topic`` about ``item``; never blocks."""
        with self._cond:
            notification_id = f"notif_{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"
            copies = self._rng.choice((2, 3)) if self._duplicate else 1
            self._pending += copies
        created_at = int(self._now())
        envelope: JSON = {
            "type": "notification_event",
            "app_id": self._app_id,
            "id": notification_id,
            "topic": topic,
            "created_at": created_at,
            "delivery_status": "pending",
            "delivery_attempts": 0,
            "delivered_at": 0,
            "first_sent_at": None,
            "self": None,
            "links": {},
            "data": {"type": "notification_event_data", "item": item},
        }
        # Copies share one notification: a duplicate looks like a redelivery of the same id.
        notification = _Notification(envelope)
        for _ in range(copies):
            self._queue.put(notification)

    def start(self) -> None:
        """Start the delivery worker (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="intercom-sim-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; undelivered notifications stay queued for a later :meth:`start`."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._queue.put(None)
        thread.join(timeout)
        self._thread = None

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every published notification was delivered or given up; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    @property
    def pending(self) -> int:
        """Deliveries not finished yet (queued, held back or in flight)."""
        with self._cond:
            return self._pending

    def _run(self) -> None:
        held: list[_Notification] = []
        with httpx.Client(timeout=self._timeout) as client:
            while True:
                try:
                    job = self._queue.get(timeout=self._shuffle_hold if held else None)
                except queue.Empty:
                    self._release(client, held)
                    held = []
                    continue
                if job is None or self._stopping.is_set():
                    if job is not None:
                        held.append(job)
                    break
                if not self._shuffle:
                    self._deliver(client, job)
                    continue
                held.append(job)
                if len(held) >= self._shuffle_batch:
                    self._release(client, held)
                    held = []
        self._requeue(held)

    def _requeue(self, held: list[_Notification]) -> None:
        """Keep undelivered notifications for a restart, minus any stop sentinel left queued."""
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                held.append(job)
        for job in held:
            self._queue.put(job)

    def _release(self, client: httpx.Client, held: list[_Notification]) -> None:
        batch = list(held)
        self._rng.shuffle(batch)
        for job in batch:
            self._deliver(client, job)

    def _deliver(self, client: httpx.Client, job: _Notification) -> None:
        try:
            for attempt in range(self._max_attempts):
                if self._attempt(client, job):
                    return
                if self._stopping.wait(self._backoff * 2**attempt):
                    return
        finally:
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()

    def _attempt(self, client: httpx.Client, job: _Notification) -> bool:
        envelope = job.envelope
        job.attempts += 1
        envelope["delivery_attempts"] = job.attempts
        if envelope["first_sent_at"] is None:
            envelope["first_sent_at"] = int(self._now())
        body = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._secret is not None:
            headers["X-Hub-Signature"] = sign(body, self._secret)
        status: int | None = None
        error: str | None = None
        try:
            status = client.post(self.url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        delivery = WebhookDelivery(
            notification_id=str(envelope["id"]),
            topic=str(envelope["topic"]),
            item_id=str(envelope["data"]["item"].get("id")),
            attempt=job.attempts,
            status_code=status,
            error=error,
            sent_at=self._now(),
            body=body,
        )
        if self._on_delivery is not None:
            self._on_delivery(delivery)
        return delivery.ok
