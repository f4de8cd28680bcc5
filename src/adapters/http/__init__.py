"""The HTTP API (FastAPI): webhooks, health, metrics, audit, review page, replays."""
