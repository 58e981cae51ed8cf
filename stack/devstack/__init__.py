"""The native local stack: PostgreSQL, Kafka (KRaft), Kafka Connect with
Debezium, the reference CRM and the worker, started as plain processes under
one state folder (``settings.home``), because there is no Docker engine.

``lifecycle`` is the entry point (``up``, ``down``); ``report`` builds
``acct2crm status``; one module per service knows how to start and probe it.
"""
