"""Build the transport that ``output.protocol`` names (with failover over ``output.hosts``)."""

from __future__ import annotations

import dataclasses
import socket

from forwarder.config import OutputConfig
from forwarder.transports.base import Transport
from forwarder.transports.datagram import DatagramTransport
from forwarder.transports.failover import FailoverTransport, parse_hosts
from forwarder.transports.local import FileTransport, StdoutTransport
from forwarder.transports.relp import RelpTransport
from forwarder.transports.replay import Tail
from forwarder.transports.stream import StreamTransport
from forwarder.transports.tcpstate import connect_tcp
from forwarder.transports.tls import tls_connector


def make_transport(output: OutputConfig, tail: Tail | None = None) -> Transport:
    """The transport that output.protocol names, built from the output settings (*tail*:
    the one a failover's tcp or tls members share, see replay.py)."""
    if output.hosts:
        pairs = parse_hosts(output.hosts, output.port)
        shared = Tail() if output.protocol in ("tcp", "tls") else None
        each = [
            make_transport(dataclasses.replace(output, host=h, port=p, hosts=()), shared) for h, p in pairs
        ]
        return FailoverTransport(each, output.failback_secs, tail=shared)
    host, port, timeout = output.host, output.port, output.connect_timeout_secs
    label = f"{output.protocol}://{host}:{port}"
    if output.protocol == "udp":
        return DatagramTransport(host, port, output.max_events_per_sec)
    if output.protocol == "file":
        return FileTransport(output.path)
    if output.protocol == "stdout":
        return StdoutTransport()

    def connect() -> socket.socket:
        return connect_tcp(host, port, timeout)

    if output.protocol in ("tls", "relp-tls"):
        connect = tls_connector(connect, output, host, label)
    if output.protocol in ("relp", "relp-tls"):  # relp-tls: imrelp with tls="on"
        return RelpTransport(connect, label, output.ack_timeout_secs, output.relp_window)
    return StreamTransport(connect, output.framing, label, output.ack_timeout_secs, tail)
