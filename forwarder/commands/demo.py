"""``forwarder demo``: the whole job on embedded defaults, on this machine alone.

It starts a local S3 endpoint (moto in server mode, from the ``demo`` extra) holding
password-protected, two-member Cato-style zips whose sequence numbers cross 9999 → 10000,
and a local syslog listener (TCP, octet-counting), then forwards with the same code as
``forwarder run --once``, shows what arrived and the checkpoint, and runs a second pass
to show that nothing is sent twice. ``--kind events_integration`` shows Cato's Events
Integration instead: gzip NDJSON objects under UUID-like keys, rendered as CEF, then an
object written late whose key sorts before the others, found and sent alone.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import Any

import boto3

from forwarder.commands.common import EXIT_OK
from forwarder.compose import build_pipeline
from forwarder.config import parse_config
from forwarder.errors import ConfigError
from forwarder.observe.logs import setup_logging
from forwarder.samples import cef_event, exporter_key, json_event, make_zip, push_event, push_key

DEMO_PASSWORD = "demo-zip-password"
DEMO_PREFIX = "DEMOACCESSKEY/"
DEMO_CONFIG = """\
source:
  bucket: cato-logs
  prefix: "{prefix}"
  endpoint_url: "{endpoint}"
  access_key_id: demo
  secret_access_key: demo-secret
  zip_password: "{password}"
output:
  protocol: tcp
  host: 127.0.0.1
  port: {port}
  framing: octet_counting
  header: rfc5424
  hostname: demo-host
checkpoint:
  path: "{state}/checkpoint.json"
batch:
  max_events: 5
log:
  format: text
"""


class _SyslogHandler(socketserver.StreamRequestHandler):
    """Reads RFC 6587 octet-counted frames and hands each message to the server's sink."""

    def handle(self) -> None:
        sink: list[bytes] = self.server.received  # type: ignore[attr-defined]
        while True:
            digits = b""
            while (c := self.rfile.read(1)) not in (b" ", b""):
                digits += c
            if not digits:
                return
            message = self.rfile.read(int(digits))
            sink.append(message)
            print(f"  collector received: {message.decode('utf-8', 'replace')[:150]}...")


class _Listener(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SyslogHandler)
        self.received: list[bytes] = []


def _start_s3() -> tuple[Any, str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError(
            "the demo needs a local S3 endpoint: pip install 'forwarder[demo]' (installs moto)"
        ) from None
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _upload(client: Any, sequence: int, events: int) -> None:
    base = sequence * 100
    cef = "".join(cef_event(base + i) + "\r\n" for i in range(events)).encode()
    jsn = "\ufeff" + "".join(json_event(base + i) + "\n\n" for i in range(events))
    body = make_zip([("cef.log", cef), ("json.log", jsn.encode())], DEMO_PASSWORD)
    client.put_object(Bucket="cato-logs", Key=exporter_key(DEMO_PREFIX, sequence), Body=body)


def run_demo(files: int = 4, events: int = 6) -> int:
    """Run the demo; returns the exit code (0 when every event arrived once)."""
    s3, endpoint = _start_s3()
    listener = _Listener()
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="forwarder-demo-") as state:
            text = DEMO_CONFIG.format(
                prefix=DEMO_PREFIX,
                endpoint=endpoint,
                password=DEMO_PASSWORD,
                port=listener.server_address[1],
                state=state,
            )
            config = parse_config(text, "demo config")
            print(
                f"1. A local S3 endpoint at {endpoint} holds {files} password-protected exporter "
                f"files (2 members each: CEF and JSON, {events} events per member)."
            )
            client = _client(endpoint)
            client.create_bucket(Bucket="cato-logs")
            for sequence in range(10_000 - files // 2, 10_000 - files // 2 + files):
                _upload(client, sequence, events)
                print(f"   s3://cato-logs/{exporter_key(DEMO_PREFIX, sequence)}")
            client.put_object(Bucket="cato-logs", Key=DEMO_PREFIX + "README.txt", Body=b"not a log file")
            print(f"2. Forwarding with this config:\n\n{_indent(text)}")
            pipeline = build_pipeline(config.pipeline(), once=True)  # the same wiring as `forwarder run`
            pipeline.open()
            try:
                pipeline.run_pass()
                expected = files * events * 2
                _wait(listener, expected)
                print(
                    f"\n3. The collector received {len(listener.received)} of {expected} events, "
                    "in order (files by sequence number: 9999 before 10000)."
                )
                checkpoint = Path(pipeline.store.where)
                print(f"4. The checkpoint ({checkpoint}):\n\n{_indent(checkpoint.read_text())}")
                second = pipeline.run_pass()
                print(f"5. A second pass sent {second} events: everything was already delivered.")
            finally:
                pipeline.close()
        ok = len(listener.received) == expected and second == 0
        print("\nDemo " + ("finished: every event arrived exactly once." if ok else "FAILED."))
        print(
            "Next: copy config.example.yaml, point it at your bucket and collector, then "
            "`forwarder check --config FILE` and `forwarder run --config FILE`."
        )
        return 0 if ok else 4
    finally:
        listener.shutdown()
        listener.server_close()
        s3.stop()


PUSH_CONFIG = """\
source:
  kind: events_integration
  bucket: cato-events
  prefix: "cato/"
  endpoint_url: "{endpoint}"
  access_key_id: demo
  secret_access_key: demo-secret
output:
  protocol: tcp
  host: 127.0.0.1
  port: {port}
  hostname: demo-host
  encoding: cef
checkpoint:
  path: "{state}/checkpoint.json"
log:
  format: text
"""


def run_push_demo(files: int = 4, events: int = 6) -> int:
    """The demo of kind events_integration; returns the exit code (0: each event arrived once)."""
    s3, endpoint = _start_s3()
    listener = _Listener()
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="forwarder-demo-") as state:
            text = PUSH_CONFIG.format(endpoint=endpoint, port=listener.server_address[1], state=state)
            client = _client(endpoint)
            client.create_bucket(Bucket="cato-events")
            print(f"1. A local S3 endpoint at {endpoint} holds {files} objects as Cato's Events Integration")
            print(f"   writes them: gzip, {events} typed JSON events a line, keys that do not sort by time.")
            for i in range(1, files + 1):
                _put_push(client, i, events)
            print("2. Forwarding (oldest first, by S3's LastModified), as CEF, with this config:")
            print(f"\n{_indent(text)}")
            pipeline = build_pipeline(parse_config(text, "demo config").pipeline(), once=True)
            pipeline.open()
            try:
                sent = pipeline.run_pass()
                _wait(listener, files * events)
                print(f"\n3. The collector received {len(listener.received)} events. The checkpoint's ledger")
                print("   names every object done (key and ETag):\n")
                print(_indent(json.dumps(pipeline.store.document(pipeline.position), indent=1)))
                late = _put_push(client, 0, events, "cato/00000000" + push_key("", 0)[8:])
                print(f"4. An object arrives late with a key that sorts before all the others: {late}")
                again = pipeline.run_pass()
                _wait(listener, (files + 1) * events)
                print(f"   The next poll sent {again} events: that object's, and nothing else.")
                third = pipeline.run_pass()
                print(f"5. A third poll sent {third} events: everything was already delivered.")
            finally:
                pipeline.close()
        ok = sent == files * events and again == events and third == 0
        ok = ok and len(listener.received) == (files + 1) * events
        print("\nDemo " + ("finished: every event arrived exactly once." if ok else "FAILED."))
        return 0 if ok else 4
    finally:
        listener.shutdown()
        listener.server_close()
        s3.stop()


def _put_push(client: Any, i: int, events: int, key: str = "") -> str:
    key = key or push_key("cato/", i)
    body = "".join(push_event(i * 100 + n) + "\n" for n in range(events)).encode()
    client.put_object(Bucket="cato-events", Key=key, Body=gzip.compress(body))
    if i:
        print(f"   s3://cato-events/{key}")
    return key


def _client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id="demo", aws_secret_access_key="demo-secret", region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint)


def _wait(listener: _Listener, count: int, timeout: float = 5.0) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if len(listener.received) >= count:
            return
        deadline.wait(0.05)


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def cmd_demo(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "info", args.log_format or "text")
    demo = run_push_demo if args.kind == "events_integration" else run_demo
    code = demo(files=args.files, events=args.events)
    return code if code else EXIT_OK
