"""The service's HTTP app (FastAPI): webhook intake and health.

``POST /webhooks/intercom`` answers:

* 200 ``{"status": "accepted"}`` once the notification is stored in the ledger's inbox;
  ``"duplicate"`` for a notification id stored before; ``"ignored"`` for a topic that is not
  about companies (nothing is stored);
* 400 for a body that is not a company ``notification_event``, 401 for a missing or wrong
  ``X-Hub-Signature``, 413 for a body over 1 MiB: nothing is stored, and Intercom will not retry
  a 4xx with the same body;
* 503 when the ledger cannot store it right now: Intercom delivers it again later.

``GET /health`` reports the worker (cycles, leadership, last error), the inbox and pending
writes, and answers 503 while cycles keep failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapters.service import MAX_WEBHOOK_BYTES, SyncWorker, Verdict, WebhookIntake

#: How long a webhook delivery waits for the ledger before it is answered 503.
STORE_TIMEOUT = 10.0


def create_app(
    intake: WebhookIntake,
    worker: SyncWorker | None,
    *,
    on_shutdown: Callable[[], None] = lambda: None,
) -> FastAPI:
    """The app; its lifespan starts and stops the intake's writer and the worker."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        intake.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if worker is not None:
                await asyncio.to_thread(worker.stop)
            await asyncio.to_thread(intake.stop)
            on_shutdown()

    api = FastAPI(
        title="syncledger",
        summary="Salesforce Accounts ⇄ Intercom Companies sync, recorded in an event ledger.",
        lifespan=lifespan,
    )

    @api.post("/webhooks/intercom", tags=["intake"])
    async def intercom_webhook(request: Request) -> JSONResponse:
        """Intercom company notifications, signed with the app's client secret."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
            return _answer(intake.too_large())
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_WEBHOOK_BYTES:
                return _answer(intake.too_large())
        checked = intake.check(bytes(body), request.headers.get("x-hub-signature"))
        if isinstance(checked, Verdict):
            return _answer(checked)
        try:
            status = await asyncio.wait_for(
                asyncio.wrap_future(intake.keep(checked)), STORE_TIMEOUT
            )
        except Exception:
            return _answer(Verdict(503, "the ledger could not store the notification; retry"))
        return JSONResponse({"status": status, "id": checked.id})

    @api.get("/health", tags=["operations"])
    async def health() -> JSONResponse:
        """Liveness and what the sync is doing."""
        app = intake.app
        body: dict[str, Any] = {
            "status": "ok",
            "ledger_position": app.state.position,
            "inbox": len(app.state.inbox),
            "pending_writes": len(app.state.pending),
            "config_version": app.state.config.version,
            "webhooks": {
                "kept": intake.kept,
                "duplicates": intake.duplicates,
                "rejected": intake.rejected,
            },
        }
        code = 200
        if worker is not None:
            st = worker.status
            body["worker"] = {
                "leader": st.leader,
                "cycles": st.cycles,
                "polls": st.polls,
                "failures_in_a_row": st.failures_in_a_row,
                "last_error": st.last_error,
                "last_cycle_at": st.last_cycle_at,
                "totals": st.totals,
            }
            if st.failures_in_a_row >= 3:
                body["status"], code = "degraded", 503
        return JSONResponse(body, status_code=code)

    return api


def _answer(verdict: Verdict) -> JSONResponse:
    if verdict.status == 200:
        return JSONResponse({"status": verdict.detail.split(":")[0], "detail": verdict.detail})
    return JSONResponse({"error": verdict.detail}, status_code=verdict.status)
