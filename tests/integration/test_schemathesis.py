"""Schemathesis against the app's own OpenAPI schema: every operation, every check, valid keys.

The app runs in process (ASGI) over a scripted SQLite ledger with its read models
(``audit_story.Story``). ``SYNCLEDGER_SCHEMATHESIS_EXAMPLES`` sets the examples per
operation (default 40, which keeps the run well under a minute on two cores).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Ok
from starlette.exceptions import StarletteDeprecationWarning

from adapters.bootstrap import Service
from adapters.http.app import create_app
from adapters.service.intake import WebhookIntake
from projections.projector import Projector
from projections.queries import Audit
from tests.integration.audit_story import ALL, KEYS, Story

with warnings.catch_warnings():
    # httpx2 is not among the test dependencies; starlette warns about plain httpx on import.
    warnings.filterwarnings("ignore", message=".*httpx2.*", category=StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

EXAMPLES = int(os.environ.get("SYNCLEDGER_SCHEMATHESIS_EXAMPLES", "40"))


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    path: Path = tmp_path_factory.mktemp("schemathesis") / "ledger.db"
    url = f"sqlite:///{path}"
    story = Story(url)
    audit = Audit(Projector.open(story.ledger, url))
    app = create_app(
        Service(
            story.ledger, WebhookIntake(story.ledger, "client-secret"), api_keys=KEYS, audit=audit
        )
    )
    with TestClient(app):  # runs the lifespan (the webhook writer) while the cases run
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    audit.projector.close()
    story.ledger.close()


def _time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def consistent(case: schemathesis.Case[Any]) -> bool:
    """Whether a schema-valid case also keeps the rules a schema cannot state (the API answers
    422 otherwise, as ``test_audit_api`` checks): ``until`` after ``since``; exactly one of
    ``/explain``'s subjects; ``as_of`` or ``position``, not both."""
    query = case.query or {}
    since, until = _time(query.get("since")), _time(query.get("until"))
    if since is not None and until is not None and until <= since:
        return False
    if case.path == "/explain":
        subjects = ("company_id", "intercom_id", "account_id")
        return sum(query.get(name) is not None for name in subjects) == 1
    return not (query.get("as_of") is not None and query.get("position") is not None)


def _negative_headers(case: schemathesis.Case[Any]) -> bool:
    """Whether schemathesis made this case's headers invalid on purpose (then the token it
    wrote is kept, and the API must refuse it)."""
    components = getattr(case.meta, "components", None) or {}
    return any(
        getattr(location, "value", location) == "header"
        and getattr(info, "mode", None) == GenerationMode.NEGATIVE
        for location, info in components.items()
    )


def all_checks() -> list[schemathesis.CheckFunction]:
    """Every check schemathesis has (conformance of status, content type, headers and body;
    negative data rejected, positive data accepted, auth not ignored, …)."""
    load_all_checks()
    return cast(list[schemathesis.CheckFunction], list(CHECKS.get_all()))


def test_the_api_keeps_to_its_schema(api_schema: schemathesis.BaseSchema) -> None:
    checks = all_checks()
    assert len(checks) >= 14
    bearer = f"Bearer {ALL}"
    results = list(api_schema.get_all_operations())
    assert all(isinstance(result, Ok) for result in results), "the schema is invalid"
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    labels = {operation.label for operation in operations}
    assert {"GET /writes", "GET /mappings", "GET /events", "GET /metrics"} <= labels
    failures: dict[str, str] = {}
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE).filter(consistent),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @given(cases)
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case[Any]) -> None:
            # Generated cases carry a random bearer token; swap in a valid key. A negative case
            # that dropped the header on purpose goes without one (and must get a 401).
            headers = case.headers
            if headers is not None and "Authorization" in headers and not _negative_headers(case):
                headers["Authorization"] = bearer
            case.call_and_validate(checks=checks)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failures
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
