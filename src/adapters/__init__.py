"""The edges of syncledger: Salesforce, Intercom, simulators, HTTP API, CLI, settings, wiring."""
