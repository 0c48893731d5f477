"""Prometheus metrics shared by the processes; each process serves them on /metrics.

A Python name is its metric's name without the ``shaftwatch_`` prefix, in capitals (a
counter keeps its ``_total``). Metrics of one component live beside it."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

RECORDS_IN_TOTAL = Counter("shaftwatch_records_in_total", "Items (readings, pings, presences, frames, signals) "
                           "read from a topic by an agent; a message that cannot be read counts as one", ["topic"])
RECORDS_ACCEPTED_TOTAL = Counter("shaftwatch_records_accepted_total", "Items that met the contract", ["topic"])
RECORDS_LAST_ACCEPTED = Gauge("shaftwatch_records_last_accepted_timestamp_seconds",
                              "When an agent last accepted an item from a topic (this process's clock)", ["topic"])
DEAD_LETTERS_TOTAL = Counter("shaftwatch_dead_letters_total", "Records sent to dead-letters", ["source", "topic"])
RECORDS_PRODUCED_TOTAL = Counter("shaftwatch_records_produced_total", "Records produced by gateways and feeders",
                                 ["topic", "producer"])
PRODUCE_ERRORS_TOTAL = Counter("shaftwatch_produce_errors_total", "Produce calls that failed after retries",
                               ["topic", "producer"])
INGEST_UNAVAILABLE_TOTAL = Counter("shaftwatch_ingest_unavailable_total", "Ingest requests answered 503 because "
                                   "Kafka did not acknowledge the batch in time", ["feed"])
CONSUMER_LAG = Gauge("shaftwatch_consumer_lag_records", "Records on a partition that this worker holds not yet "
                     "committed by its group (end offset minus committed offset), as of the scrape",
                     ["topic", "partition"])
CHILD_RESTARTS_TOTAL = Counter("shaftwatch_child_restarts_total", "Children of `shaftwatch run` (the local Kafka "
                               "broker included) restarted after they died", ["child"])
PRODUCER_RENEWALS_TOTAL = Counter("shaftwatch_producer_renewals_total", "Producers replaced after a fatal error",
                                  ["producer"])

__all__ = [
    "CHILD_RESTARTS_TOTAL", "CONSUMER_LAG", "CONTENT_TYPE_LATEST", "DEAD_LETTERS_TOTAL", "INGEST_UNAVAILABLE_TOTAL", "PRODUCER_RENEWALS_TOTAL", "PRODUCE_ERRORS_TOTAL",
    "RECORDS_ACCEPTED_TOTAL", "RECORDS_IN_TOTAL", "RECORDS_LAST_ACCEPTED", "RECORDS_PRODUCED_TOTAL",
    "generate_latest",
]
