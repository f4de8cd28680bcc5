"""Sync use cases, written against ports only (no Salesforce, Intercom or database code)."""
