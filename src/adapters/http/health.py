"""Health: ``GET /health`` (what the service is doing) and Kubernetes-style probes beside it.

All three are public (load balancers and kubelets probe them) and show counts and reasons,
never data.

* ``GET /health`` — the worker (cycles, leadership, last error), the webhook writer
  (``intake``: alive, notifications waiting), the inbox and pending writes. 503 ``degraded``
  while cycles keep failing (three in a row) or the webhook writer is not running.
* ``GET /health/live`` — 200 while the process serves and its webhook writer runs; 503
  otherwise (restart it).
* ``GET /health/ready`` — 200 when this process can do its work: the ledger's database answers
  a trivial query, the webhook writer runs, neither Salesforce nor Intercom made the last cycle
  fail, and the sync is not paused by the API budget. Otherwise 503 with ``not_ready`` naming
  each check that failed and ``checks`` saying why. The systems are judged by what the worker
  saw in its last cycle (no API call per probe); a process without a worker, or a standby (not
  holding the lease, so not calling the systems), does not judge them.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from adapters.bootstrap import Service
from adapters.http.auth import Public
from adapters.http.deps import ServiceDep
from adapters.intercom.client import IntercomError
from adapters.salesforce.errors import SalesforceError
from adapters.service.worker import WorkerStatus

__all__ = ["DATABASE_TIMEOUT", "readiness", "router"]

#: How long ``/health/ready`` waits for the database's answer (seconds).
DATABASE_TIMEOUT: Final = 3.0
_PROBE = Public("load balancers probe it; it shows counts, never data")

router = APIRouter(tags=["operations"])


@router.get("/health", dependencies=[_PROBE])
async def health(service: ServiceDep) -> JSONResponse:
    """What the sync is doing; 503 `degraded` while cycles keep failing or the webhook writer
    is not running."""
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
        "intake": {"alive": intake.alive, "waiting": intake.waiting},
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
    if not intake.alive:
        body["status"], code = "degraded", 503
    return JSONResponse(body, status_code=code)


@router.get("/health/live", dependencies=[_PROBE])
async def live(service: ServiceDep) -> JSONResponse:
    """Liveness: 200 while the process serves and its webhook writer runs."""
    intake = {"alive": service.intake.alive, "waiting": service.intake.waiting}
    if not intake["alive"]:
        return JSONResponse({"status": "down", "intake": intake}, status_code=503)
    return JSONResponse({"status": "alive", "intake": intake})


@router.get("/health/ready", dependencies=[_PROBE])
async def ready(service: ServiceDep) -> JSONResponse:
    """Readiness: 200 when the database answers, the webhook writer runs, the systems were
    reachable in the last cycle and the API budget does not pause the sync; else 503 naming
    what is not ready."""
    checks = {"database": await _database(service), **readiness(service)}
    failing = [name for name, verdict in checks.items() if verdict != "ok"]
    body = {"status": "not ready" if failing else "ready", "not_ready": failing, "checks": checks}
    return JSONResponse(body, status_code=503 if failing else 200)


async def _database(service: Service) -> str:
    """``ok`` when the ledger's database answers a trivial query in time."""
    try:
        await asyncio.wait_for(
            asyncio.to_thread(service.ledger.recorder.max_notification_id), DATABASE_TIMEOUT
        )
    except TimeoutError:
        return f"no answer within {DATABASE_TIMEOUT:g} s"
    except Exception as exc:  # whatever the driver raises: the probe says it, never 500
        return f"unavailable: {type(exc).__name__}"
    return "ok"


def readiness(service: Service) -> dict[str, str]:
    """The checks of ``/health/ready`` but the database's: check → ``ok`` or why not."""
    checks = {"intake": "ok" if service.intake.alive else "the webhook writer is not running"}
    worker = service.worker
    if worker is None or not worker.status.leader:
        return checks  # no cycles run here: nothing to judge the systems or the budget by
    st = worker.status
    for system, errors in (("salesforce", SalesforceError), ("intercom", IntercomError)):
        failed = st.failures_in_a_row > 0 and _error_class(st) in _names(errors)
        checks[system] = f"the last cycle failed: {st.last_error}" if failed else "ok"
    paused = st.last_report.paused if st.last_report is not None else ""
    checks["budget"] = f"sync paused: {paused}" if paused else "ok"
    return checks


def _error_class(status: WorkerStatus) -> str:
    """The class name the worker's ``last_error`` (``"ClassName: message"``) starts with."""
    return status.last_error.partition(":")[0].strip()


def _names(root: type[Exception]) -> frozenset[str]:
    """The names of ``root`` and every class under it."""
    found, todo = {root.__name__}, list(root.__subclasses__())
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(found)
