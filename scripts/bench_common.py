"""Shared parts of the benchmark scripts: statistics, databases, processes, machine, report.

Imported by ``scripts/bench_run.py`` (what ``scripts/bench`` runs) and by the single-purpose
scripts (``bench_store.py``, ``bench_intake.py``, ...). Nothing here measures anything.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # also runnable without the editable install

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SYNCLEDGER = Path(sys.executable).parent / "syncledger"


def default_postgres_url() -> str:
    return (
        os.environ.get("SYNCLEDGER_BENCH_POSTGRES_URL")
        or os.environ.get("SYNCLEDGER_TEST_POSTGRES_URL")
        or DEFAULT_PG_URL
    )


# --- statistics ----------------------------------------------------------------------------


@dataclass
class Sample:
    """Several runs of one figure: the median and the min–max spread."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def show(self, fmt: Callable[[float], str]) -> str:
        return fmt(self.median) if self.values else "–"

    def spread(self, fmt: Callable[[float], str]) -> str:
        if len(self.values) < 2:
            return "(1 run)" if self.values else "–"
        return f"{fmt(min(self.values))}–{fmt(max(self.values))}"


def rate(x: float) -> str:
    return f"{x:,.0f}"


def ms(x: float) -> str:
    return f"{x * 1000:,.1f}"


def secs(x: float) -> str:
    return f"{x:,.2f}"


def ratio(x: float) -> str:
    return f"{x:.2f}"


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0–100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- databases -----------------------------------------------------------------------------


class PostgresAdmin:
    """Creates and drops the throw-away schemas the PostgreSQL measurements use."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = url
        u = make_url(url)
        self.conninfo: dict[str, Any] = {
            "host": u.host or "127.0.0.1",
            "port": u.port or 5432,
            "user": u.username or "postgres",
            "dbname": u.database,
            "connect_timeout": 5,
        }
        if u.password:
            self.conninfo["password"] = u.password
        self.created: list[str] = []

    def _execute(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(**self.conninfo, autocommit=True) as conn:
            cur = conn.execute(sql)  # type: ignore[arg-type,unused-ignore]
            return cur.fetchall() if cur.description else []

    def check(self) -> str:
        """Connect once; return the server version (raises when unreachable)."""
        rows = self._execute("SHOW server_version")
        return str(rows[0][0])

    def settings(self) -> dict[str, str]:
        names = ("fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
        return {n: str(self._execute(f"SHOW {n}")[0][0]) for n in names}

    def create_schema(self) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE SCHEMA "{name}"')
        self.created.append(name)
        return name

    def drop_schema(self, name: str) -> None:
        self._execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        if name in self.created:
            self.created.remove(name)

    def drop_leftovers(self) -> None:
        for name in list(self.created):
            try:
                self.drop_schema(name)
            except Exception as exc:  # report, never hide, a schema left behind
                print(f"warning: could not drop schema {name}: {exc}", file=sys.stderr)

    def schema_url(self, schema: str) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}schema={schema}"


def connect_postgres(url: str) -> tuple[PostgresAdmin | None, str, dict[str, str], str]:
    """``(admin, version, settings, note)``; admin is None (and note says why) if unreachable."""
    admin = PostgresAdmin(url)
    try:
        return admin, admin.check(), admin.settings(), ""
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        note = (
            f"PostgreSQL at {url} is unreachable ({type(exc).__name__}: {first}); "
            "PostgreSQL rows are SKIPPED."
        )
        return None, "", {}, note


@dataclass
class Database:
    """One ledger database kind; :meth:`fresh` yields the URL of a new, empty ledger."""

    key: str  # "sqlite" | "postgres"
    label: str
    tmp: Path
    pg: PostgresAdmin | None = None

    @contextmanager
    def fresh(self) -> Iterator[str]:
        if self.pg is None:
            path = self.tmp / f"ledger-{uuid.uuid4().hex[:12]}.db"
            try:
                yield f"sqlite:///{path}"
            finally:
                for suffix in ("", "-wal", "-shm", "-journal", ".serve.lock"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            schema = self.pg.create_schema()
            try:
                yield self.pg.schema_url(schema)
            finally:
                self.pg.drop_schema(schema)


def databases(tmp: Path, pg: PostgresAdmin | None) -> list[Database]:
    dbs = [Database("sqlite", "SQLite", tmp)]
    if pg is not None:
        dbs.append(Database("postgres", "PostgreSQL", tmp, pg))
    return dbs


def library_env(database_url: str) -> dict[str, str]:
    """The product's store settings (``ledger_env``) on eventsourcing's own recorder, without
    syncledger's hash-chained subclass: what "the library's raw append rate" means here."""
    from adapters.store.database import ledger_env

    env = ledger_env(database_url)
    env.pop("APPLICATION_RECORDER_TOPIC", None)
    return env


def product_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` (a library env) with syncledger's hash-chained recorder, as ``ledger_env``."""
    from adapters.store.recorders import RECORDER_TOPICS

    out = dict(env)
    topic = RECORDER_TOPICS.get(out.get("PERSISTENCE_MODULE", ""))
    if topic:
        out["APPLICATION_RECORDER_TOPIC"] = topic
    return out


# --- processes -----------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy (connection errors count as no)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.TransportError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.05)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


class BenchError(RuntimeError):
    """A benchmark could not be taken; the message says why (printed without a traceback)."""


class Processes:
    """``syncledger`` subprocesses started by one measurement; :meth:`stop_all` ends them."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [str(SYNCLEDGER), *args], stdout=log, stderr=subprocess.STDOUT,
                cwd=self.workdir, env=self.env,
            )  # fmt: skip
        self.started.append((name, process))
        return process

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                tail = self.log(name).strip().splitlines()[-1:] or ["(no output)"]
                raise BenchError(f"{name} exited with {process.returncode}: {tail[0]}")

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                process.terminate()
        for _, process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.started.clear()


def base_env() -> dict[str, str]:
    """This environment without any SYNCLEDGER_* setting (each measurement sets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCLEDGER_")}


# --- machine -------------------------------------------------------------------------------


def machine_info(
    pg_version: str = "", pg_settings: Mapping[str, str] | None = None
) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    info = {
        "cores (nproc)": str(nproc),
        "CPU": cpu,
        "RAM": mem,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "libraries": ", ".join(
            f"{d} {version(d)}"
            for d in (
                "eventsourcing",
                "eventsourcing-sqlalchemy",
                "SQLAlchemy",
                "psycopg",
                "fastapi",
                "uvicorn",
                "httpx",
            )
        ),
        "SQLite": f"{sqlite3.sqlite_version} (WAL, synchronous=FULL default), files in "
        f"{tempfile.gettempdir()}",
        "load average at start (1, 5, 15 min)": load,
    }
    if pg_version:
        settings = ", ".join(f"{k}={v}" for k, v in (pg_settings or {}).items())
        info["PostgreSQL"] = f"{pg_version} on localhost over TCP ({settings})"
    else:
        info["PostgreSQL"] = "not reachable (rows skipped)"
    return info


# --- the report ----------------------------------------------------------------------------


@dataclass
class Target:
    """An issue's target next to the measured figure; ``met`` None when not measured."""

    name: str
    target: str
    measured: str
    met: bool | None


@dataclass
class Section:
    """One part of the report: a table, how it was taken, targets, notes."""

    title: str
    method: str
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def markdown(self) -> str:
        out = [f"## {self.title}", "", self.method.strip(), ""]
        if self.header:
            out.append("| " + " | ".join(self.header) + " |")
            out.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.header))) + "|"
            )
            out += ["| " + " | ".join(row) + " |" for row in self.rows]
            out.append("")
        out += [f"- {note}" for note in self.notes]
        if self.notes:
            out.append("")
        out.append(f"_This part took {self.seconds:.0f} s._")
        out.append("")
        return "\n".join(out)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]
