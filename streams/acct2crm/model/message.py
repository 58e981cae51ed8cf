"""A Kafka message as the pipeline sees it, apart from any client library."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """The parts of a Kafka message the pipeline needs."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
