"""Incidents: fusion and ranking, the alert lifecycle and its store, the console, notifications."""
