"""The running service: webhook intake, the sync worker, leases."""
