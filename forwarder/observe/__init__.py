"""Observing a run: the log, progress lines, readiness, Prometheus metrics and their endpoint."""
