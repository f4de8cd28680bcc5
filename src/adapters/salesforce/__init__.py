"""Salesforce Accounts over the REST API (simple-salesforce): login, client, the sync port."""
