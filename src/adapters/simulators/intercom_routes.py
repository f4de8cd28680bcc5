"""The simulated Intercom API's routes: companies, data attributes, and the ``/_sim`` endpoints.

Each resource is a module-level router; a route gets the workspace through :data:`SimDep` (and
the webhook dispatcher through :data:`WebhooksDep`), which read what
:func:`adapters.simulators.intercom.create_intercom_app` put on ``app.state``.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from adapters.simulators.intercom_model import IntercomError
from adapters.simulators.intercom_state import IntercomState
from adapters.simulators.intercom_webhooks import WebhookDispatcher

JSON = dict[str, Any]

MAX_PER_PAGE = 60

# The dependencies are coroutines so FastAPI calls them in the event loop, not in a thread.


async def _workspace(request: Request) -> IntercomState:
    state: IntercomState = request.app.state.intercom
    return state


async def _webhooks(request: Request) -> WebhookDispatcher | None:
    dispatcher: WebhookDispatcher | None = request.app.state.webhooks
    return dispatcher


SimDep = Annotated[IntercomState, Depends(_workspace)]
"""The simulated workspace the app serves."""

WebhooksDep = Annotated[WebhookDispatcher | None, Depends(_webhooks)]
"""The app's webhook dispatcher, or None when it was built without a webhook URL."""


async def _json_object(request: Request) -> JSON:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise IntercomError(400, "bad_request", "The request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise IntercomError(400, "bad_request", "The request body must be a JSON object")
    return data


def _page_list(request: Request, data: list[JSON], total: int, page: int, per_page: int) -> JSON:
    total_pages = math.ceil(total / per_page)
    next_url = (
        str(request.url.include_query_params(page=page + 1, per_page=per_page))
        if page < total_pages
        else None
    )
    return {
        "type": "list",
        "data": data,
        "pages": {
            "type": "pages",
            "next": next_url,
            "page": page,
            "per_page": per_page,
            "total_pages": total_pages,
        },
        "total_count": total,
    }


companies = APIRouter()


@companies.post("/companies")
async def create_or_update_company(request: Request, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.upsert_company(await _json_object(request)))


@companies.get("/companies")
async def retrieve_companies(
    request: Request,
    sim: SimDep,
    company_id: str | None = None,
    name: str | None = None,
    page: int = 1,
    per_page: int = 15,
) -> JSONResponse:
    if company_id is not None or name is not None:
        return JSONResponse(sim.find_by(company_id=company_id, name=name))
    per_page = min(per_page, MAX_PER_PAGE)
    data, total = sim.list_page(page, per_page, "desc")
    if {"tag_id", "segment_id"} & set(request.query_params):
        # The simulator has no tags or segments, so such a filter matches nothing.
        data, total = [], 0
    return JSONResponse(_page_list(request, data, total, page, per_page))


@companies.post("/companies/list")
async def list_companies(
    request: Request, sim: SimDep, page: int = 1, per_page: int = 15, order: str = "desc"
) -> JSONResponse:
    per_page = min(per_page, MAX_PER_PAGE)
    data, total = sim.list_page(page, per_page, order)
    return JSONResponse(_page_list(request, data, total, page, per_page))


# Registered before /companies/{id}, which would otherwise take "scroll" for an id.
@companies.get("/companies/scroll")
async def scroll_companies(sim: SimDep, scroll_param: str | None = None) -> JSONResponse:
    data, param = sim.scroll(scroll_param)
    body = {"type": "list", "data": data, "pages": None, "total_count": None}
    return JSONResponse({**body, "scroll_param": param})


@companies.get("/companies/{id}")
async def retrieve_company(id: str, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.find(id))


@companies.put("/companies/{id}")
async def update_company(id: str, request: Request, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.update_company_by_id(id, await _json_object(request)))


@companies.delete("/companies/{id}")
async def delete_company(id: str, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.remove(id))


data_attributes = APIRouter()


@data_attributes.get("/data_attributes")
async def list_data_attributes(
    sim: SimDep, model: str | None = None, include_archived: bool = False
) -> JSONResponse:
    if model is not None and model not in ("contact", "company", "conversation"):
        raise IntercomError(
            400, "parameter_invalid", "model must be one of contact, company, conversation"
        )
    data = sim.list_attributes(model, include_archived)
    return JSONResponse({"type": "list", "data": data})


@data_attributes.post("/data_attributes")
async def create_data_attribute(request: Request, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.create_attribute(await _json_object(request)))


@data_attributes.put("/data_attributes/{attribute_id}")
async def update_data_attribute(attribute_id: int, request: Request, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.update_attribute(attribute_id, await _json_object(request)))


simulator = APIRouter(prefix="/_sim")
"""No auth, no rate limit: call counters, the webhook log, and Messenger-qualified companies."""


@simulator.get("/counters")
async def sim_counters(sim: SimDep) -> JSONResponse:
    counters = sim.counters
    return JSONResponse(
        {
            "counters": counters,
            "total": sum(counters.values()),
            "intercom_versions": sim.intercom_versions,
        }
    )


@simulator.post("/reset_counters")
async def sim_reset_counters(sim: SimDep) -> JSONResponse:
    sim.reset_counters()
    return JSONResponse({"counters": {}, "total": 0, "intercom_versions": {}})


@simulator.post("/qualified_companies")
async def sim_qualified_company(request: Request, sim: SimDep) -> JSONResponse:
    return JSONResponse(sim.qualify_company(await _json_object(request)))


@simulator.get("/webhooks")
async def sim_webhooks(sim: SimDep, dispatcher: WebhooksDep) -> JSONResponse:
    """Every delivery attempt so far, and how many deliveries are still to finish."""
    pending = dispatcher.pending if dispatcher is not None else 0
    deliveries = [d.to_json() for d in sim.webhook_log]
    return JSONResponse({"deliveries": deliveries, "pending": pending})
