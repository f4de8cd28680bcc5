"""syncledger's domain: events, configuration, pure decisions and the ledger application.

Nothing in this package performs I/O except through the event store that
:class:`ledger.application.LedgerApp` is configured with.
"""
