"""Read models fed from the ledger's notification log."""
