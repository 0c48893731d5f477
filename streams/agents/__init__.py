"""Faust agents, one module per input: importing this package registers them on the app."""

from . import fence, fusion, power, vision  # noqa: F401
