"""The processes and tools: the ``shaftwatch`` CLI, the supervisor of ``shaftwatch run``,
the HTTP server, the demo feeds, the local Kafka broker and model-weights provisioning."""

# The demo feeds `shaftwatch run` can start, in the order of their ops ports
# (http.feeder_ops_port + index): the CLI's vocabulary and the supervisor's plan.
DEMO_FEEDS = ("meters", "fences", "cameras")
