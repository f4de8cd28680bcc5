"""The ``syncledger`` command line (typer)."""
