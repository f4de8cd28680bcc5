"""Logging: JSON or text lines on stderr, secrets redacted, one line per sync cycle, a bug's
stack in the log while the worker goes on."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from adapters.logs import configure_logging, default_format, redact
from adapters.service.worker import SyncWorker
from adapters.sync.fakes import FakeIntercom, FakeSalesforce
from ledger.application import LedgerApp


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[str]:
    return [line for line in stream.getvalue().splitlines() if line]


def test_json_lines_carry_time_level_logger_message_and_extra(stream: io.StringIO) -> None:
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("syncledger").info("hello %s", "world", extra={"request_id": "r-1"})
    logging.getLogger("syncledger").debug("not shown at INFO")
    [line] = lines(stream)
    record = json.loads(line)
    assert record["message"] == "hello world"
    assert record["level"] == "INFO" and record["logger"] == "syncledger"
    assert record["request_id"] == "r-1" and record["time"].startswith("20")


def test_text_lines_put_extra_fields_after_the_message(stream: io.StringIO) -> None:
    configure_logging("text", "DEBUG", stream=stream)
    logging.getLogger("uvicorn.error").info("Started server", extra={"port": 8000})
    [line] = lines(stream)
    assert line.endswith(" INFO uvicorn.error Started server port=8000")
    assert line[:4].isdigit() and "T" in line.split()[0]


def test_json_is_the_default_when_stderr_is_not_a_terminal() -> None:
    assert default_format(io.StringIO()) == "json"


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("cannot open postgresql+psycopg://user:SuperSecret123@db:5432/x", "SuperSecret123"),
        ("GET / Authorization: Bearer eyJhbGciOi.payload.sig", "eyJhbGciOi.payload.sig"),
        ("login with client_secret=s3cr3t-VALUE and more", "s3cr3t-VALUE"),
        ("key -----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----", "MIIEabc"),
    ],
)
def test_secrets_never_reach_the_log(stream: io.StringIO, message: str, secret: str) -> None:
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("syncledger").warning(message)
    try:
        raise RuntimeError(message)
    except RuntimeError:
        logging.getLogger("syncledger").exception("failed")
    assert secret not in stream.getvalue()
    assert secret not in redact(message)


def test_one_info_line_per_sync_cycle_and_a_bug_is_logged_with_its_stack(
    stream: io.StringIO,
) -> None:
    configure_logging("json", "INFO", stream=stream)
    app = LedgerApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    calls: list[int] = []

    def before_cycle() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug")

    worker = SyncWorker(
        app,
        FakeSalesforce(),
        FakeIntercom(),
        poll_interval=0.05,
        idle_check=0.01,
        max_backoff=0.05,
        before_cycle=before_cycle,
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while worker.status.cycles < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    records = [json.loads(line) for line in lines(stream)]
    failed = [r for r in records if r["message"].startswith("sync cycle failed")]
    assert failed and "KeyError: 'a bug'" in failed[0]["exc_info"]
    assert "Traceback" in failed[0]["exc_info"]
    cycles = [r for r in records if r["message"].startswith("sync cycle:")]
    assert len(cycles) == worker.status.cycles >= 2
    assert {"duration_ms", "changes", "writes_applied", "poll"} <= cycles[0].keys()
