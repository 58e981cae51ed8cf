"""Kafka Connect configuration from ``connectors/``, applied through the REST API."""
