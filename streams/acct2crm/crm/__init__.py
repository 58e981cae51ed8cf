"""Talking to the CRM's HTTP API."""
