"""``POST /replays`` and ``GET /replays/{id}``: replays over HTTP (scope ``replay:execute``).

:func:`adapters.http.app.create_app` mounts :data:`router` when the service has
``replay_settings``, and keeps the runs it started in ``app.state.replay_runs``
(:class:`ReplayRuns`).

``POST /replays`` runs the guard at once (the target must be a sandbox on
``SYNCLEDGER_REPLAY_ALLOWED_ORGS``; otherwise 422 naming the failed check, and nothing is
done), then plans and applies in a background thread and answers 202 with the run's id.
``GET /replays/{id}`` reports the run from the ledger (state, plan summary, batches done,
records applied and refused, pauses, outcome); while the plan is still being derived it says
``planning``, and a run that failed before it was recorded says ``failed`` with the reason.
A body with ``"resume": "<id>"`` continues a paused or interrupted run.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr

from adapters.bootstrap import Service
from adapters.http.auth import REPLAY_EXECUTE, Scope
from adapters.http.deps import LedgerDep, ServiceDep
from adapters.salesforce.errors import SalesforceError
from adapters.salesforce.sandbox import target_accounts
from adapters.settings import Settings
from adapters.sync.fakes import catalog
from adapters.sync.ports import SandboxOrg
from adapters.sync.replay import (
    ReplayError,
    ReplayRequest,
    TargetOrg,
    check_target,
    load_run,
    run_replay,
)
from ledger.catalog import IntercomAttribute

__all__ = ["ReplayBody", "ReplayRuns", "RunsDep", "router"]


class ReplayBody(BaseModel):
    """A replay request. Give the session id, or username and password, of the target."""

    target_instance_url: str
    target_session_id: SecretStr | None = None
    target_username: str | None = None
    target_password: SecretStr | None = None
    target_security_token: SecretStr | None = None
    from_: datetime | None = Field(default=None, alias="from")
    until: datetime | None = None
    config: str | None = Field(default=None, description="A proposed configuration (TOML).")
    dry_run: bool = False
    resume: str | None = None
    target_daily_allocation: int | None = Field(default=None, gt=0)


class ReplayRuns:
    """The runs one app started, as far as the ledger does not tell yet: ``planning`` until
    the run is recorded, ``failed`` (with the reason) when it ended before that."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}

    def claim(self, run_id: str) -> None:
        """Mark ``run_id`` as planning; 409 if it is planning already."""
        with self._lock:
            if self._runs.get(run_id, {}).get("state") == "planning":
                raise HTTPException(409, f"replay {run_id} is already running")
            self._runs[run_id] = {"id": run_id, "state": "planning"}

    def settle(self, run_id: str, outcome: dict[str, Any]) -> None:
        """What the background thread ended with."""
        with self._lock:
            self._runs[run_id] = outcome

    def memo(self, run_id: str) -> dict[str, Any]:
        """What is known of ``run_id`` here (empty: nothing)."""
        with self._lock:
            return dict(self._runs.get(run_id, {}))


async def get_runs(request: Request) -> ReplayRuns:
    """The app's replay runs (``app.state.replay_runs``, set by ``create_app``)."""
    runs: ReplayRuns = request.app.state.replay_runs
    return runs


RunsDep = Annotated[ReplayRuns, Depends(get_runs)]


async def get_replay_settings(service: ServiceDep) -> Settings:
    """The settings replays run under (the allowed target orgs)."""
    if service.replay_settings is None:
        raise HTTPException(404, "replays are not enabled on this server")
    return service.replay_settings


router = APIRouter(tags=["replay"])
_EXECUTE = Scope(REPLAY_EXECUTE)


@router.post("/replays", status_code=202, dependencies=[_EXECUTE])
def start(
    body: ReplayBody,
    request: Request,
    service: ServiceDep,
    settings: Annotated[Settings, Depends(get_replay_settings)],
    runs: RunsDep,
) -> JSONResponse:
    """Check the target org, then plan and apply in the background."""
    replay = _replay_request(body, request)
    # One connection for the guard and the writes: it stays open for the background work,
    # which checks the org on it again before every batch.
    connection = ExitStack()
    try:
        accounts = connection.enter_context(target_accounts(replay))
        org = check_target(accounts, settings.replay_allowed_orgs, replay.target_instance_url)
    except ReplayError as exc:
        connection.close()
        raise HTTPException(422, str(exc)) from None
    except BaseException:
        connection.close()
        raise
    run_id = body.resume or uuid.uuid4().hex
    runs.claim(run_id)
    threading.Thread(
        target=_work,
        args=(service, replay, (connection, accounts), org, body.resume, run_id, runs),
        name=f"replay-{run_id}",
        daemon=True,
    ).start()
    return JSONResponse(
        {"id": run_id, "state": "planning", "target_org_id": org.org_id},
        status_code=202,
        headers={"Location": f"/replays/{run_id}"},
    )


@router.get("/replays/{run_id}", dependencies=[_EXECUTE])
def show(run_id: str, ledger: LedgerDep, runs: RunsDep) -> JSONResponse:
    """A replay run's progress and outcome, from the ledger."""
    status = load_run(ledger, run_id)
    memo = runs.memo(run_id)
    if status is None:
        if not memo:
            raise HTTPException(404, f"no replay run {run_id}")
        return JSONResponse(memo)
    body = status.to_dict()
    if memo.get("state") == "failed":
        body["error"] = memo.get("error")
    return JSONResponse(body)


def _replay_request(body: ReplayBody, request: Request) -> ReplayRequest:
    return ReplayRequest(
        target_instance_url=body.target_instance_url,
        target_session_id=_reveal(body.target_session_id),
        target_username=body.target_username,
        target_password=_reveal(body.target_password),
        target_security_token=_reveal(body.target_security_token) or "",
        window_from=body.from_,
        window_until=body.until,
        config_text=body.config,
        config_source="proposed (request body)" if body.config is not None else "current",
        dry_run=body.dry_run,
        requested_by=f"http {request.client.host if request.client else 'unknown'}",
        target_daily_allocation=body.target_daily_allocation,
    )


def _work(
    service: Service,
    replay: ReplayRequest,
    target: tuple[ExitStack, SandboxOrg],
    org: TargetOrg,
    resume: str | None,
    run_id: str,
    runs: ReplayRuns,
) -> None:
    """Plan and apply (in a background thread) on the connection the guard checked, close it,
    and settle the run's memo."""
    connection, accounts = target
    try:
        with connection:
            run_replay(
                service.ledger,
                accounts,
                replay,
                org,
                _attributes(service),
                resume=resume,
                run_id=run_id,
            )
        outcome: dict[str, Any] = {"id": run_id, "state": "recorded"}
    except (ReplayError, SalesforceError) as exc:
        outcome = {"id": run_id, "state": "failed", "error": str(exc)}
    except Exception as exc:  # a background thread must report, not vanish
        outcome = {"id": run_id, "state": "failed", "error": type(exc).__name__}
    runs.settle(run_id, outcome)


def _attributes(service: Service) -> Sequence[IntercomAttribute]:
    """The Intercom attributes a proposed configuration is checked against: the live catalog,
    else the fakes' catalog and the attributes the configuration in force maps."""
    if service.intercom_attributes is not None:
        return service.intercom_attributes()
    known = {rm.intercom.name: rm.intercom for rm in service.ledger.config.mappings}
    return [*catalog().intercom.values(), *known.values()]


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
