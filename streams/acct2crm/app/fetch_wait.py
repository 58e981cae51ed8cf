"""The worker's Kafka consumer: a short long-poll, so one idle topic never stalls another.

The worker reads its change topic and its commands topic (one broker, one
connection) through one consumer, and aiokafka sends a node only one fetch
at a time. While the change partition's fetched records are being handled,
the next fetch asks only for the others; when none of them has anything new
(a replay writes no commands), the broker holds that fetch for the wait
Faust fixes at 1.5 s, and the change partition, drained meanwhile, waits
behind it. Measured: a replay ran at ~1,300 changes/s with the worker idle
most of the time. A short wait costs an idle worker a few small requests a
second and lets the drained partition be fetched again at once.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver

FETCH_MAX_WAIT_MS = 50


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when the consumer starts
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class ShortWaitTransport(driver.Transport):
    """Faust's aiokafka transport whose consumer long-polls for ``FETCH_MAX_WAIT_MS``."""

    Consumer = _Consumer
