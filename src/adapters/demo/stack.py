"""The demo's child processes: both simulators and ``syncledger serve`` on free loopback ports,
started, watched and stopped as a whole."""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from adapters.demo.errors import DemoError
from adapters.demo.summary import titled_table
from adapters.simulators.server import free_port

TOKEN = "demo-token"
SF_API = "/services/data/v62.0"
#: How often the demo's service polls Salesforce (the product's default is 300 s).
POLL_INTERVAL = 1.0


def _syncledger() -> list[str]:
    script = Path(sys.executable).parent / "syncledger"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "adapters"]


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, ask the kernel to SIGTERM a child when the demo dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1
    return lambda: prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    name: str
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        last = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(last) or "(its log is empty)"

    def failed(self, what: str) -> DemoError:
        code = self.process.poll()
        status = f"exit code {code}" if code is not None else "still running"
        return DemoError(
            f"the {self.name} {what} ({status}); its log ends: {self.tail()} "
            f"(whole log: {self.log})"
        )


class Stack:
    """Both simulators and the service, as child processes on loopback; stopped as a whole."""

    def __init__(self, workdir: Path, database_url: str) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.secret = secrets.token_urlsafe(16)
        self.sf_url, self.ic_url, self.service_url = (
            f"http://127.0.0.1:{free_port()}" for _ in range(3)
        )
        self.children: list[Child] = []
        self._preexec = _die_with_parent()

    @property
    def webhook_url(self) -> str:
        return f"{self.service_url}/webhooks/intercom"

    def settings(self) -> dict[str, str]:
        """The environment that points ``syncledger serve``/``sync --once`` at the simulators."""
        return {
            "SYNCLEDGER_DATABASE_URL": self.database_url,
            "SYNCLEDGER_SALESFORCE_INSTANCE_URL": self.sf_url,
            "SYNCLEDGER_SALESFORCE_SESSION_ID": TOKEN,
            "SYNCLEDGER_INTERCOM_BASE_URL": self.ic_url,
            "SYNCLEDGER_INTERCOM_TOKEN": TOKEN,
            "SYNCLEDGER_INTERCOM_CLIENT_SECRET": self.secret,
            "SYNCLEDGER_POLL_INTERVAL_SECONDS": f"{POLL_INTERVAL:g}",
        }

    def launch(self, name: str, url: str, args: list[str]) -> Child:
        """Start ``syncledger ARGS`` as a child, its output going to ``<name>.log``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}
        log = self.workdir / f"{name.lower().replace(' ', '-')}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*_syncledger(), *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env | self.settings(), start_new_session=True,
                preexec_fn=self._preexec,
            )  # fmt: skip
        child = Child(name, url, log, process)
        self.children.append(child)
        return child

    @staticmethod
    def wait_ready(child: Child, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Wait until ``ready()``; DemoError if the child exits or never gets there."""
        deadline = time.monotonic() + timeout
        while True:
            if child.process.poll() is not None:
                raise child.failed("did not start")
            with suppress(httpx.HTTPError):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise child.failed(f"did not answer within {timeout:g} s")
            time.sleep(0.1)

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise child.failed("stopped unexpectedly")

    def stop(self) -> None:
        """Stop the service first (it finishes its cycle), then the simulators; never leave
        one running."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
            try:
                child.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()


def run_until_interrupted(stack: Stack, console: Console) -> None:
    """Print where everything is, then wait for Ctrl-C (or a child that stops)."""
    where = {
        "Salesforce simulator": f"{stack.sf_url}{SF_API}/",
        "Intercom simulator": f"{stack.ic_url}/companies",
        "sync service": f"{stack.service_url}/health",
    }
    table = titled_table("Running (until Ctrl-C)", "", "", "pid", header=False)
    for child in stack.children:
        table.add_row(child.name, where[child.name], str(child.process.pid))
    table.add_row("webhook URL", stack.webhook_url, "")
    table.add_row("bearer token (both)", TOKEN, "")
    table.add_row("their logs", f"{stack.workdir}/", "")
    console.print(table)
    console.print("The settings that point syncledger (sync --once, events, config) at them:")
    for name, value in stack.settings().items():
        console.print(f"  export {name}={value}", soft_wrap=True, highlight=False)
    try:
        while True:
            stack.check_alive()
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("Stopping the service and both simulators…")
