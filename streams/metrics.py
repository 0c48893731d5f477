"""Prometheus metrics shared by the processes. Each process serves them on /metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

RECORDS_IN = Counter("shaftwatch_records_in_total", "Records read from a topic by an agent", ["topic"])
RECORDS_ACCEPTED = Counter("shaftwatch_records_accepted_total", "Records that met the contract", ["topic"])
DEAD_LETTERS = Counter("shaftwatch_dead_letters_total", "Records sent to dead-letters", ["source", "topic"])
RECORDS_PRODUCED = Counter("shaftwatch_records_produced_total", "Records produced by gateways and feeders", ["topic", "producer"])
PRODUCE_ERRORS = Counter("shaftwatch_produce_errors_total", "Produce calls that failed after retries", ["topic", "producer"])
PRODUCER_RENEWALS = Counter("shaftwatch_producer_renewals_total", "Producers replaced after a fatal error", ["producer"])

__all__ = [
    "CONTENT_TYPE_LATEST", "DEAD_LETTERS", "PRODUCE_ERRORS", "PRODUCER_RENEWALS", "RECORDS_ACCEPTED", "RECORDS_IN",
    "RECORDS_PRODUCED", "generate_latest",
]
