"""The ``syncledger`` command line, in process (typer's runner) and as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from adapters.cli.main import app
from adapters.demo.story import demo_config
from adapters.simulators.server import free_port
from ledger.config import parse_config

SYNCLEDGER = Path(sys.executable).parent / "syncledger"

INVALID_CONFIG = """
[identifier]
salesforce_field = "Description"

[[attribute]]
intercom = "name"
salesforce = "Tier__c"
direction = "salesforce_to_intercom"

[[attribute]]
intercom = "last_request_at"
salesforce = "Renewal_Date__c"
direction = "intercom_to_salesforce"

[[attribute]]
intercom = "custom_attributes.nope"
salesforce = "Name"
direction = "intercom_to_salesforce"
"""

BADLY_SHAPED_CONFIG = """
colour = "blue"

[[attribute]]
intercom = "name"
salesforce = "Name"
direction = "sideways"
"""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.delenv("SYNCLEDGER_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "120")
    return CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "config", "events", "simulate"):
        assert command in result.output
    config_help = runner.invoke(app, ["config", "--help"]).output
    assert all(c in config_help for c in ("validate", "apply", "show"))
    assert "intercom" in runner.invoke(app, ["simulate", "--help"]).output


def test_config_validate_accepts_a_valid_file(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path / "sync.toml", demo_config().to_toml())
    result = runner.invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 0
    assert "valid" in result.output


def test_config_validate_prints_every_problem(runner: CliRunner, tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", INVALID_CONFIG)
    result = runner.invoke(app, ["config", "validate", str(config)])
    assert result.exit_code == 1
    for name in ("Description", "Tier__c", "last_request_at", "custom_attributes.nope"):
        assert name in result.output
    assert "Traceback" not in result.output

    shaped = write(tmp_path / "shape.toml", BADLY_SHAPED_CONFIG)
    result = runner.invoke(app, ["config", "validate", str(shaped)])
    assert result.exit_code == 1
    assert "colour" in result.output and "sideways" in result.output


def test_config_validate_of_a_missing_file_is_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "validate", "nowhere.toml"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: nowhere.toml: no such file"]


def test_config_apply_then_show_round_trips(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first = write(tmp_path / "v1.toml", demo_config().to_toml())
    second = write(tmp_path / "v2.toml", demo_config("Site").to_toml())
    for n, file in enumerate((first, second), start=1):
        applied = runner.invoke(app, ["config", "apply", str(file), "--database-url", url])
        assert applied.exit_code == 0, applied.output
        assert f"configuration version {n} in force" in applied.output
    shown = runner.invoke(app, ["config", "show", "--database-url", url])
    assert shown.exit_code == 0
    assert shown.stdout.startswith("# version 2\n")
    assert parse_config(shown.stdout) == demo_config("Site")


def test_config_apply_refuses_an_invalid_file_and_records_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    bad = write(tmp_path / "bad.toml", INVALID_CONFIG)
    result = runner.invoke(app, ["config", "apply", str(bad), "--database-url", url])
    assert result.exit_code == 1
    shown = runner.invoke(app, ["config", "show", "--database-url", url])
    assert shown.stdout.startswith("# version 0")


def test_the_database_url_comes_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCLEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    config = write(tmp_path / "sync.toml", demo_config().to_toml())
    assert runner.invoke(app, ["config", "apply", str(config)]).exit_code == 0
    assert (tmp_path / "env.db").exists()
    assert not (tmp_path / "syncledger.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["events", "--database-url", "nosuchdb://here"],
        ["config", "show", "--database-url", "not a url"],
        ["demo", "--database-url", "nosuchdb://here"],
    ],
)
def test_a_bad_database_url_is_one_line_and_exit_code_2(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_reading_a_ledger_that_does_not_exist_creates_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["events"])
    assert result.exit_code == 2
    assert "no ledger at sqlite:///syncledger.db" in result.output
    assert not (tmp_path / "syncledger.db").exists()


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SYNCLEDGER_DATABASE_URL"}
    done = subprocess.run(
        [str(SYNCLEDGER), "events", "--database-url", "nosuchdb://here"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: unsupported database 'nosuchdb'")
    assert "Traceback" not in done.stderr


def test_simulate_intercom_rejects_a_secret_without_a_webhook(runner: CliRunner) -> None:
    result = runner.invoke(app, ["simulate", "intercom", "--port", "1", "--client-secret", "s"])
    assert result.exit_code == 2 and "--webhook-url" in result.output
    missing = runner.invoke(app, ["simulate", "intercom", "--port", "1", "--data", "none.json"])
    assert missing.exit_code == 2 and "none.json" in missing.output


def test_simulate_intercom_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(SYNCLEDGER), "simulate", "intercom", "--port", str(port), "--token", "t0k"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/companies",
                    headers={"Authorization": "Bearer t0k", "Accept": "application/json"},
                )
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert response.status_code == 200
        assert response.json()["type"] == "list"
    finally:
        process.terminate()
        process.wait(timeout=10)
