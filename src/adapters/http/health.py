"""``GET /health``: the worker (cycles, leadership, last error), the inbox and pending writes.

It answers 503 while cycles keep failing (three in a row). It is public (load balancers probe
it) and shows counts only, never data.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from adapters.http.auth import Public
from adapters.http.deps import ServiceDep

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/health",
    tags=["operations"],
    dependencies=[Public("load balancers probe it; it shows counts, never data")],
)
async def health(service: ServiceDep) -> JSONResponse:
    """Liveness and what the sync is doing."""
    state = service.ledger.state
    intake = service.intake
    body: dict[str, Any] = {
        "status": "ok",
        "ledger_position": state.position,
        "inbox": len(state.inbox),
        "pending_writes": len(state.pending),
        "config_version": state.config.version,
        "webhooks": {
            "kept": intake.kept,
            "duplicates": intake.duplicates,
            "rejected": intake.rejected,
        },
    }
    code = 200
    if service.worker is not None:
        st = service.worker.status
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
