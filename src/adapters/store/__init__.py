"""Where the ledger lives: the event store chosen by URL and the hash chain over it."""
