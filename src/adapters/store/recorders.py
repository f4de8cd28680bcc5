"""The chained recorders by persistence module, and opening one to verify or chain a ledger."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.utils import Environment

from adapters.store.chain import ChainedRecorder, NoChainError
from adapters.store.chain_postgres import ChainedPostgresRecorder
from adapters.store.chain_sqlite import ChainedSQLiteRecorder


def _topic(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


#: ``APPLICATION_RECORDER_TOPIC`` per persistence module (see ``store.database.ledger_env``).
RECORDER_TOPICS = {
    "eventsourcing.sqlite": _topic(ChainedSQLiteRecorder),
    "eventsourcing.postgres": _topic(ChainedPostgresRecorder),
}


def open_chained_recorder(
    env: dict[str, str], app_name: str
) -> tuple[InfrastructureFactory[Any], ChainedRecorder]:
    """The chained recorder of the application ``app_name`` stored as ``env`` says."""
    factory = InfrastructureFactory[Any].construct(Environment(app_name, env))
    recorder = factory.application_recorder()
    if not isinstance(recorder, ChainedSQLiteRecorder | ChainedPostgresRecorder):
        factory.close()
        raise NoChainError("this ledger is kept in memory: there is no stored chain to verify")
    return factory, recorder
