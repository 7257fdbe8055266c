"""Formats: bytes to records to syslog messages, as pure functions (CEF, LEEF, JSON, syslog)."""
