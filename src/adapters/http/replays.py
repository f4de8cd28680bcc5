"""``POST /replays`` and ``GET /replays/{id}``: replays over HTTP (scope ``replay:execute``).

Mount it on the service's app with the access marker of the scope::

    from adapters.http.auth import REPLAY_EXECUTE
    api.include_router(replay_router(ledger, settings, auth.requires(REPLAY_EXECUTE)))

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
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr

from adapters.salesforce.client import SalesforceError
from adapters.settings import Settings
from adapters.sync.replay import (
    ReplayError,
    ReplayRequest,
    check_target,
    load_run,
    run_replay,
    target_accounts,
)
from ledger.application import LedgerApp
from ledger.catalog import IntercomAttribute


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


def replay_router(
    ledger: LedgerApp,
    settings: Settings,
    access: Depends,
    *,
    intercom_attributes: Callable[[], Sequence[IntercomAttribute]] | None = None,
) -> APIRouter:
    """The replay routes over ``ledger``; ``access`` is the route's access marker."""
    router = APIRouter(tags=["replay"])
    running: dict[str, dict[str, Any]] = {}
    lock = threading.Lock()

    def attributes() -> Sequence[IntercomAttribute]:
        if intercom_attributes is not None:
            return intercom_attributes()
        known = {rm.intercom.name: rm.intercom for rm in ledger.config.mappings}
        from adapters.sync.fakes import catalog

        return [*catalog().intercom.values(), *known.values()]

    @router.post("/replays", status_code=202, dependencies=[access])
    def start(body: ReplayBody, request: Request) -> JSONResponse:
        """Check the target org, then plan and apply in the background."""
        secret = body.target_security_token
        replay = ReplayRequest(
            target_instance_url=body.target_instance_url,
            target_session_id=_reveal(body.target_session_id),
            target_username=body.target_username,
            target_password=_reveal(body.target_password),
            target_security_token=_reveal(secret) or "",
            window_from=body.from_,
            window_until=body.until,
            config_text=body.config,
            config_source="proposed (request body)" if body.config is not None else "current",
            dry_run=body.dry_run,
            requested_by=f"http {request.client.host if request.client else 'unknown'}",
            target_daily_allocation=body.target_daily_allocation,
        )
        try:
            with target_accounts(replay) as accounts:
                org = check_target(
                    accounts, settings.replay_allowed_orgs, replay.target_instance_url
                )
        except ReplayError as exc:
            raise HTTPException(422, str(exc)) from None
        run_id = body.resume or uuid.uuid4().hex
        with lock:
            if running.get(run_id, {}).get("state") == "planning":
                raise HTTPException(409, f"replay {run_id} is already running")
            running[run_id] = {"id": run_id, "state": "planning"}

        def work() -> None:
            try:
                with target_accounts(replay) as accounts:
                    run_replay(
                        ledger,
                        accounts,
                        replay,
                        org,
                        attributes(),
                        resume=body.resume,
                        run_id=run_id,
                    )
                outcome: dict[str, Any] = {"id": run_id, "state": "recorded"}
            except (ReplayError, SalesforceError) as exc:
                outcome = {"id": run_id, "state": "failed", "error": str(exc)}
            except Exception as exc:  # a background thread must report, not vanish
                outcome = {"id": run_id, "state": "failed", "error": type(exc).__name__}
            with lock:
                running[run_id] = outcome

        threading.Thread(target=work, name=f"replay-{run_id}", daemon=True).start()
        return JSONResponse(
            {"id": run_id, "state": "planning", "target_org_id": org.org_id},
            status_code=202,
            headers={"Location": f"/replays/{run_id}"},
        )

    @router.get("/replays/{run_id}", dependencies=[access])
    def show(run_id: str) -> JSONResponse:
        """A replay run's progress and outcome, from the ledger."""
        status = load_run(ledger, run_id)
        with lock:
            memo = dict(running.get(run_id, {}))
        if status is None:
            if not memo:
                raise HTTPException(404, f"no replay run {run_id}")
            return JSONResponse(memo)
        body = status.to_dict()
        if memo.get("state") == "failed":
            body["error"] = memo.get("error")
        return JSONResponse(body)

    return router


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None
