"""The one root of every error syncledger raises on purpose.

Catch :class:`SyncLedgerError` to catch them all; each message says what was wrong and, where
there is one, what to do. Errors of the libraries underneath (SQLAlchemy, psycopg, httpx,
simple-salesforce) are translated into this tree where they cross into our code, so no caller
needs to know which library was involved. The tree (module in brackets)::

    SyncLedgerError
    ├── ConfigError               ledger.config: a configuration refused, every problem listed
    ├── LedgerBusyError           ledger.application: lost the race to append too often
    ├── AuditQueryError           projections.queries: an audit query that cannot be answered
    ├── ProjectionError           projections.engine: read models that cannot be opened or kept
    ├── SettingsError             adapters.settings: unusable SYNCLEDGER_* settings
    ├── DatabaseUrlError          adapters.store.database: a database URL that cannot be used
    ├── LedgerNotFound            adapters.store.database: no ledger where the URL points
    ├── StoreUnavailable          adapters.store.database: the ledger's database cannot be opened
    ├── NoChainError              adapters.store.chain: no stored ledger to verify
    ├── ServiceError              adapters.service.errors: the service cannot start or go on
    ├── WriteRefused              adapters.sync.ports: a system refused a write (and said why)
    ├── BackfillPaused            adapters.sync.backfill: stopped; running it again resumes
    ├── ReplayError               adapters.sync.replay_request: a replay cannot go on
    │   ├── ReplayRefused             the target is not an allowed sandbox
    │   └── ReplayStopped             stopped part-way; ``run_id`` resumes it
    ├── SalesforceError           adapters.salesforce.client: Salesforce said no
    │   ├── SalesforceAuthError       the session or login is not accepted
    │   ├── SalesforceLimitExceeded   the org's daily API allocation is used up
    │   ├── SalesforceUnavailable     an outage that outlasted the retries
    │   └── SalesforceRejected        a request refused for its content
    ├── IntercomError             adapters.intercom.client: Intercom said no
    │   ├── IntercomAuthError         the access token is not accepted
    │   ├── IntercomRateLimited       rate limited past the retries
    │   ├── IntercomUnavailable       an outage that outlasted the retries
    │   └── IntercomRejected          a request refused for its content
    ├── WebhookRejected           adapters.intercom.webhooks: a webhook body that cannot be accepted
    ├── BodyTooLarge              adapters.http.limits: a request body over its route's limit (413)
    ├── LoginRequired             adapters.http.auth: a review page visitor without a usable key
    └── DemoError                 adapters.demo.errors: the demo cannot run

Private control-flow exceptions (a lost race inside one call) and the simulators' own errors
(they play the other side's servers) are not part of the tree.
"""

from __future__ import annotations


class SyncLedgerError(Exception):
    """The root of every error syncledger raises on purpose."""
