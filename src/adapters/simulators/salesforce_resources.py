"""The REST resources of the Salesforce simulator: one handler per (method, path) under vNN.N/.

Handlers take a :class:`~.salesforce_calls.Call` and return a response or raise
:class:`~adapters.simulators.salesforce_values.ApiError`; :mod:`.salesforce` does authentication,
API accounting and fault injection before any of them runs. ``ROUTES`` is matched in order.
``SimulatorSettings``, ``Call``, ``Route``, ``ROUTES`` and the JSON answers live in
:mod:`.salesforce_calls` and are re-exported here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.responses import Response

from adapters.simulators import soql, soql_eval
from adapters.simulators.salesforce_calls import (
    ROUTES,
    Call,
    Route,
    SimulatorSettings,
    error_response,
    json_response,
    route,
)
from adapters.simulators.salesforce_schema import (
    ACCOUNT,
    ENTITIES,
    EXTERNAL_ID_FIELDS,
    describe,
    organization_row,
    sobject_info,
)
from adapters.simulators.salesforce_state import MultipleMatches
from adapters.simulators.salesforce_values import ApiError, normalize_id, parse_datetime, render

__all__ = [
    "ROUTES",
    "Call",
    "Route",
    "SimulatorSettings",
    "error_response",
    "json_response",
]

MAX_BATCH = 2000
MAX_COLLECTION = 200
_BATCH_OPTION = re.compile(r"batchSize\s*=\s*(\d+)", re.I)
_ACCOUNT_FIELDS = tuple(spec.name for spec in ACCOUNT.fields.values())


def _record(entity: str, row: dict[str, Any], fields: Any, version: str) -> dict[str, Any]:
    url = f"/services/data/v{version}/sobjects/{entity}/{row['Id']}"
    out: dict[str, Any] = {"attributes": {"type": entity, "url": url}}
    out.update((f, render(row.get(f))) for f in fields)
    return out


def _field_list(raw: str | None, entity: soql.Entity) -> list[str]:
    names = []
    for name in (raw or "").split(","):
        spec = entity.fields.get(name.strip().lower())
        if spec is None:
            msg = f"No such column '{name.strip()}' on entity '{entity.name}'. If you are "
            msg += "attempting to use a custom field, be sure to append the '__c' after the custom "
            msg += "field name. Please reference your WSDL or the describe call for the names."
            raise ApiError(400, "INVALID_FIELD", msg)
        names.append(spec.name)
    return names


# -- query ---------------------------------------------------------------------------------------


def _batch_size(call: Call) -> int:
    m = _BATCH_OPTION.search(call.request.headers.get("sforce-query-options", ""))
    return max(200, min(MAX_BATCH, int(m.group(1)))) if m else MAX_BATCH


def _page(
    call: Call, records: list[Any], total: int, done: bool, locator: str, end: int
) -> Response:
    body: dict[str, Any] = {"totalSize": total, "done": done}
    if not done:
        body["nextRecordsUrl"] = f"/services/data/v{call.version}/query/{locator}-{end}"
    body["records"] = records
    return json_response(200, body)


def _run_query(call: Call, include_deleted: bool) -> Response:
    text = call.param("q")
    if not text:
        raise ApiError(400, "MALFORMED_QUERY", "A query string has to be specified")
    try:
        query = soql.parse(text, ENTITIES)
    except soql.SoqlError as exc:
        raise ApiError(400, exc.code, exc.message) from None
    if query.entity == "Organization":
        rows = [organization_row(call.settings.org_id, call.settings.sandbox)]
    else:
        rows = call.state.account_rows(include_deleted=include_deleted)
    selected = soql_eval.execute(query, rows)
    if query.count_only:
        return json_response(200, {"totalSize": len(selected), "done": True, "records": []})
    records = [_record(query.entity, dict(r), query.fields, call.version) for r in selected]
    size = _batch_size(call)
    if len(records) <= size:
        return _page(call, records, len(records), True, "", 0)
    locator = call.state.cursors.open(records)
    return _page(call, records[:size], len(records), False, locator, size)


@route("GET", r"query", "query")
def _query(call: Call) -> Response:
    return _run_query(call, include_deleted=False)


@route("GET", r"queryAll", "query_all")
def _query_all(call: Call) -> Response:
    return _run_query(call, include_deleted=True)


@route("GET", r"query(?:All)?/(01g[A-Za-z0-9]+)-(\d+)", "query_more")
def _query_more(call: Call) -> Response:
    locator, offset = call.args[0], int(call.args[1])
    size = _batch_size(call)
    records, total, done = call.state.cursors.page(locator, offset, size)
    return _page(call, records, total, done, locator, offset + size)


# -- metadata and limits -------------------------------------------------------------------------


@route("GET", r"", "resources")
def _resources(call: Call) -> Response:
    base = f"/services/data/v{call.version}"
    names = ("sobjects", "query", "queryAll", "limits", "composite")
    return json_response(200, {n: f"{base}/{n}" for n in names})


@route("GET", r"limits", "limits")
def _limits(call: Call) -> Response:
    cap = call.settings.daily_limit
    used = call.state.meter.usage()
    body = {
        "DailyApiRequests": {"Max": cap, "Remaining": max(cap - used, 0)},
        "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
        "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000},
        "DataStorageMB": {"Max": 5, "Remaining": 5},
        "HourlyODataCallout": {"Max": 20000, "Remaining": 20000},
    }
    return json_response(200, body)


@route("GET", r"sobjects", "describe_global")
def _describe_global(call: Call) -> Response:
    sobjects = [sobject_info(e.name, call.version) for e in ENTITIES.values()]
    return json_response(
        200, {"encoding": "UTF-8", "maxBatchSize": MAX_COLLECTION, "sobjects": sobjects}
    )


@route("GET", r"sobjects/(Account|Organization)", "sobject_info")
def _sobject_info(call: Call) -> Response:
    entity = ENTITIES[call.args[0].lower()]
    return json_response(
        200, {"objectDescribe": sobject_info(entity.name, call.version), "recentItems": []}
    )


@route("GET", r"sobjects/(Account|Organization)/describe", "describe")
def _describe(call: Call) -> Response:
    return json_response(200, describe(ENTITIES[call.args[0].lower()], call.version))


# -- getUpdated / getDeleted ---------------------------------------------------------------------


def _window(call: Call) -> tuple[datetime, datetime]:
    bounds: list[datetime] = []
    for name in ("start", "end"):
        raw = call.param(name)
        if raw is None:
            raise ApiError(400, "MISSING_ARGUMENT", f"{name} parameter is required")
        parsed = parse_datetime(raw)
        if parsed is None:
            msg = (
                f"Unable to parse {name}: {raw!r}. Send ISO 8601 with an offset, e.g. "
                "2024-05-01T00:00:00+00:00 (give simple-salesforce tz-aware datetimes)."
            )
            if " " in raw:
                msg += " A '+' in the query string must be sent as %2B."
            raise ApiError(400, "INVALID_PARAMETER_VALUE", msg)
        bounds.append(parsed)
    return bounds[0], bounds[1]


@route("GET", r"sobjects/Account/updated", "updated")
def _updated(call: Call) -> Response:
    return json_response(200, call.state.updated(*_window(call)))


@route("GET", r"sobjects/Account/deleted", "deleted")
def _deleted(call: Call) -> Response:
    return json_response(200, call.state.deleted(*_window(call)))


# -- single records ------------------------------------------------------------------------------


def _body_object(call: Call) -> dict[str, Any]:
    data = call.json()
    if not isinstance(data, dict):
        msg = "Cannot deserialize instance of Account from START_ARRAY value [ or request may be "
        msg += "missing a required field"
        raise ApiError(400, "JSON_PARSER_ERROR", msg)
    return data


def _saved(record_id: str, created: bool | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
    if created is not None:
        body["created"] = created
    return body


@route("POST", r"sobjects/Account", "sobject_create", write=True)
def _create(call: Call) -> Response:
    return json_response(201, _saved(call.state.create_account(_body_object(call))))


@route("GET", r"sobjects/(Account|Organization)/([^/]+)", "sobject_get")
def _get(call: Call) -> Response:
    entity = ENTITIES[call.args[0].lower()]
    if entity is ACCOUNT:
        row = call.state.read(call.args[1])
    else:
        row = organization_row(call.settings.org_id, call.settings.sandbox)
        if normalize_id(call.args[1]) != row["Id"]:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    fields = _field_list(call.param("fields"), entity) if call.param("fields") else None
    everything = [spec.name for spec in entity.fields.values()]
    return json_response(200, _record(entity.name, row, fields or everything, call.version))


@route("PATCH", r"sobjects/Account/([^/]+)", "sobject_patch", write=True)
def _patch(call: Call) -> Response:
    call.state.update_account(call.args[0], _body_object(call))
    return Response(status_code=204)


@route("DELETE", r"sobjects/Account/([^/]+)", "sobject_delete", write=True)
def _delete(call: Call) -> Response:
    call.state.delete_account(call.args[0])
    return Response(status_code=204)


def _external_field(name: str) -> str:
    if name.lower() == "id":
        return "Id"
    for candidate in EXTERNAL_ID_FIELDS:
        if candidate.lower() == name.lower():
            return candidate
    msg = f"Provided external ID field does not exist or is not accessible: {name}"
    raise ApiError(404, "NOT_FOUND", msg)


def _multiple(call: Call, ids: list[str]) -> Response:
    return json_response(300, [f"/services/data/v{call.version}/sobjects/Account/{i}" for i in ids])


@route("GET", r"sobjects/Account/([^/]+)/(.+)", "sobject_get")
def _get_by_external(call: Call) -> Response:
    ext = _external_field(call.args[0])
    if ext == "Id":
        rows = [call.state.read(call.args[1])]
    else:
        rows = call.state.find_external(ext, call.args[1])
    if not rows:
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    if len(rows) > 1:
        return _multiple(call, [r["Id"] for r in rows])
    return json_response(200, _record("Account", rows[0], _ACCOUNT_FIELDS, call.version))


@route("PATCH", r"sobjects/Account/([^/]+)/(.+)", "sobject_upsert", write=True)
def _upsert(call: Call) -> Response:
    ext = _external_field(call.args[0])
    update_only = (call.param("updateOnly") or "").lower() == "true"
    try:
        record_id, created = call.state.upsert(
            ext, call.args[1], _body_object(call), update_only=update_only
        )
    except MultipleMatches as exc:
        return _multiple(call, exc.ids)
    if created:
        return json_response(201, _saved(record_id, True))
    if float(call.version) < 46.0:  # before Summer '19 an update by upsert answered 204
        return Response(status_code=204)
    return json_response(200, _saved(record_id, False))


# -- sObject Collections -------------------------------------------------------------------------


def _collection(call: Call) -> tuple[list[dict[str, Any]], bool]:
    body = call.json()
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApiError(400, "JSON_PARSER_ERROR", "records must be a list of sObjects")
    if len(records) > MAX_COLLECTION:
        msg = (
            f"record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
        )
        raise ApiError(400, "EXCEEDED_ID_LIMIT", msg)
    for record in records:
        kind = (record.get("attributes") or {}).get("type")
        if not kind:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        if str(kind).lower() != "account":
            raise ApiError(400, "INVALID_TYPE", f"sObject type '{kind}' is not supported.")
    return records, bool(body.get("allOrNone", False))


@route("POST", r"composite/sobjects", "composite", write=True)
def _collection_create(call: Call) -> Response:
    records, all_or_none = _collection(call)
    return json_response(
        200, call.state.save_collection(records, creating=True, all_or_none=all_or_none)
    )


@route("PATCH", r"composite/sobjects", "composite", write=True)
def _collection_update(call: Call) -> Response:
    records, all_or_none = _collection(call)
    return json_response(
        200, call.state.save_collection(records, creating=False, all_or_none=all_or_none)
    )


@route("DELETE", r"composite/sobjects", "composite", write=True)
def _collection_delete(call: Call) -> Response:
    ids = [i for i in (call.param("ids") or "").split(",") if i]
    if not ids or len(ids) > MAX_COLLECTION:
        raise ApiError(400, "EXCEEDED_ID_LIMIT" if ids else "MISSING_ARGUMENT", "ids: 1 to 200 ids")
    all_or_none = (call.param("allOrNone") or "").lower() == "true"
    return json_response(200, call.state.delete_collection(ids, all_or_none=all_or_none))


def _retrieve(call: Call, ids: list[str], fields: list[str]) -> Response:
    if not fields:
        raise ApiError(400, "MISSING_ARGUMENT", "fields: the fields parameter is required")
    if len(ids) > MAX_BATCH:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"more than {MAX_BATCH} ids")
    rows = call.state.retrieve(ids)
    return json_response(
        200, [None if r is None else _record("Account", r, fields, call.version) for r in rows]
    )


@route("GET", r"composite/sobjects/Account", "composite_get")
def _collection_get(call: Call) -> Response:
    ids = [i for i in (call.param("ids") or "").split(",") if i]
    fields = _field_list(call.param("fields"), ACCOUNT) if call.param("fields") else []
    return _retrieve(call, ids, fields)


@route("POST", r"composite/sobjects/Account", "composite_get")
def _collection_get_post(call: Call) -> Response:
    body = call.json()
    if not isinstance(body, dict):
        raise ApiError(400, "JSON_PARSER_ERROR", 'expected {"ids": [...], "fields": [...]}')
    ids = [str(i) for i in body.get("ids") or []]
    fields = _field_list(",".join(body.get("fields") or []), ACCOUNT) if body.get("fields") else []
    return _retrieve(call, ids, fields)
