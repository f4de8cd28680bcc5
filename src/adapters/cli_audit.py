"""CLI commands for the audit features; ``register`` adds them to the ``syncledger`` app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
