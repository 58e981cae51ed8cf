"""Applying sync intents to the CRM, in order per code, concurrently across codes."""
