"""Kafka plumbing shared by every process: the producer (acks=all, idempotent) and topic
administration (the design's topics with their settings)."""
