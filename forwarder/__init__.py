"""forwarder: Cato Networks Log Exporter files from S3 to a syslog collector, at least once, in order."""

__version__ = "0.1.0"
