"""The Faust worker: the app, its topics and tables, the agents, timers and web pages.

This is the one package with import-time side effects: importing ``streams.worker.app``
loads and validates the configuration and builds the Faust app, and every module here
registers topics, tables, agents, timers or pages on it. Nothing outside this package
imports it, except the worker's entry point (``streams.ops.cli worker``).
"""
