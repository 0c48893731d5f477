"""Everything of ShaftWatch that touches Kafka, one sub-package per concern:

- ``streams.contract`` — topic names, records, strict decoding, JSON Schema, partitioning;
- ``streams.config`` — the YAML config files, their models, loading and live reload;
- ``streams.kafka`` — Kafka plumbing: the producer, topic administration;
- ``streams.worker`` — the Faust worker: app, topics, tables, agents, timers, pages;
- ``streams.edge`` — where partners' data enters: HTTP ingest, camera gateway, pseudonyms;
- ``streams.ops`` — the processes and tools: CLI, supervisor, HTTP server, demo feeds,
  local broker, model weights.

``streams.logs`` and ``streams.metrics`` are shared by all of them. ARCHITECTURE.md says
what each package may import.
"""
