"""Faust agents, one module per input: importing this package registers them on the app."""

from streams.worker.agents import fence, fusion, power, vision  # noqa: F401
