"""The processes and tools: the ``shaftwatch`` CLI, the supervisor of ``shaftwatch run``,
the HTTP server, the demo feeds, the local Kafka broker and model-weights provisioning."""
