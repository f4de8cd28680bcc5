"""Intercom Companies over the REST API (httpx): client, webhooks, the sync port."""
