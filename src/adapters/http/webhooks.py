"""``POST /webhooks/intercom``: Intercom's company notifications into the ledger's inbox.

Answers:

* 200 ``{"status": "accepted"}`` once the notification is stored in the ledger's inbox;
  ``"duplicate"`` for a notification id stored before; ``"ignored"`` for a topic that is not
  about companies (nothing is stored);
* 400 for a body that is not a company ``notification_event``, 401 for a missing or wrong
  ``X-Hub-Signature``, 413 for a body over 1 MiB: nothing is stored, and Intercom will not retry
  a 4xx with the same body;
* 503 when the ledger cannot store it right now: Intercom delivers it again later.

The time from a valid delivery's body to its notification stored is observed in
``syncledger_webhook_store_duration_seconds`` (:class:`adapters.http.metrics.HttpMetrics`).
The route counts its own body (the app's body limits leave it alone, :mod:`adapters.http.
limits`), so a refusal is answered in this shape and counted as rejected.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adapters.http.auth import Public
from adapters.http.deps import IntakeDep
from adapters.http.metrics import HttpMetricsDep
from adapters.service.intake import MAX_WEBHOOK_BYTES, Verdict

__all__ = ["STORE_TIMEOUT", "WEBHOOK_REQUEST", "WEBHOOK_RESPONSES", "router"]

#: How long a webhook delivery waits for the ledger before it is answered 503.
STORE_TIMEOUT = 10.0

_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Stored (`accepted`), seen before (`duplicate`), or not about companies "
        "(`ignored`).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"enum": ["accepted", "duplicate", "ignored"]},
                        "id": {"type": "string"},
                        "detail": {"type": "string"},
                    },
                    "required": ["status"],
                }
            }
        },
    },
    **{
        status: {"description": why, "content": {"application/json": {"schema": _ERROR}}}
        for status, why in {
            400: "Not a company notification_event.",
            401: "Missing or wrong X-Hub-Signature.",
            413: "Body over 1 MiB.",
            503: "The ledger cannot store it now; Intercom retries.",
        }.items()
    },
}
#: The webhook's request as OpenAPI describes it (the route reads the raw body to verify it).
WEBHOOK_REQUEST: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Hub-Signature",
            "in": "header",
            "required": False,
            "description": "`sha1=` HMAC-SHA1 of the raw body with the app's client secret.",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "An Intercom `notification_event` about a company.",
                    "properties": {
                        "type": {"const": "notification_event"},
                        "id": {"type": "string"},
                        "topic": {"type": "string"},
                        "data": {"type": "object"},
                    },
                    "required": ["type", "id", "topic", "data"],
                }
            }
        },
    },
}

router = APIRouter()


@router.post(
    "/webhooks/intercom",
    tags=["intake"],
    dependencies=[Public("Intercom signs each delivery; the signature is checked")],
    responses=WEBHOOK_RESPONSES,
    openapi_extra=WEBHOOK_REQUEST,
)
async def intercom_webhook(
    request: Request, intake: IntakeDep, measured: HttpMetricsDep
) -> JSONResponse:
    """Intercom company notifications, signed with the app's client secret."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        return _answer(intake.too_large())
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_WEBHOOK_BYTES:
            return _answer(intake.too_large())
    arrived = time.perf_counter()
    checked = intake.check(bytes(body), request.headers.get("x-hub-signature"))
    if isinstance(checked, Verdict):
        return _answer(checked)
    try:
        status = await asyncio.wait_for(asyncio.wrap_future(intake.keep(checked)), STORE_TIMEOUT)
    except Exception:
        return _answer(Verdict(503, "the ledger could not store the notification; retry"))
    measured.webhook_store.observe(time.perf_counter() - arrived)
    return JSONResponse({"status": status, "id": checked.id})


def _answer(verdict: Verdict) -> JSONResponse:
    if verdict.status == 200:
        return JSONResponse({"status": verdict.detail.split(":")[0], "detail": verdict.detail})
    return JSONResponse({"error": verdict.detail}, status_code=verdict.status)
