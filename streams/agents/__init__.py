"""Faust agents, one module per input: importing this package registers them on the app."""

from . import fence, power, vision  # noqa: F401
