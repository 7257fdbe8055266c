"""Transports: deliver batches of syslog messages to a collector (``factory.make_transport``)."""
