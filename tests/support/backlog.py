"""Build exporter backlogs in a bucket and run the forwarder on them, for integration tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from forwarder.formats.severity import cef_severity
from forwarder.samples import cef_event, exporter_key, json_event, make_zip

BUCKET = "cato-logs"
PREFIX = "ACCESSKEY/"
PASSWORD = "zip-pässword"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Backlog:
    """What was put in the bucket, and the events (bytes, in delivery order) expected."""

    events: list[bytes] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


def _tricky_cef(n: int) -> list[str]:
    """CEF events with escapes, non-ASCII text and one over 8 KB."""
    long_msg = "x" * 9000
    return [
        cef_event(n),
        "CEF:0|Cato Networks||1.0|Security|Pipe \\| and backslash \\\\ in header|7|"
        "rt=Mon May 18 14:49:40 UTC 2020 "
        f"msg=equals \\= backslash \\\\ newline \\n bare | pipe cs1=Ünïcödé 日本語 n={n}",
        f"CEF:0|Cato Networks|Cato SASE Platform|1.0|Big|Event over 8 KB|Very-High|msg={long_msg} n={n}",
    ]


def _tricky_json(n: int) -> list[str]:
    return [json_event(n), '{"note": "quotes \\" and \\\\ and \\u00e9 é 中文", "n": ' + f"{n}}}"]


def put_backlog(client: Any, sequences: list[int], password: str = PASSWORD, events: int = 3) -> Backlog:
    """Upload one multi-member zip per sequence number (CEF and JSON members) and noise keys.

    Lines use CRLF and LF endings, blank lines and a BOM, which the forwarder must strip.
    """
    client.create_bucket(Bucket=BUCKET)
    backlog = Backlog()
    for seq in sequences:
        cef = [cef_event(seq * 1000 + i) for i in range(events)] + _tricky_cef(seq)
        jsn = [json_event(seq * 1000 + i) for i in range(events)] + _tricky_json(seq)
        cef_bytes = "\ufeff" + "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(cef))
        json_bytes = "\n\n".join(jsn) + "\n   \n"
        # Members are read in name order: "a-..." before "b-...".
        body = make_zip([("b-json.log", json_bytes.encode()), ("a-cef.log", cef_bytes.encode())], password)
        key = exporter_key(PREFIX, seq)
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        backlog.keys.append(key)
        backlog.events += [e.encode() for e in cef + jsn]
    for noise in ("README.txt", "CATO00000000000000000001.zip.tmp", "other/CATOabc.zip"):
        client.put_object(Bucket=BUCKET, Key=PREFIX + noise, Body=b"CEF:0|not|a|log|file|x|1|")
    client.put_object(Bucket=BUCKET, Key=exporter_key("OTHERKEY/", 1), Body=b"CEF:0|wrong|prefix|1|x|y|1|")
    return backlog


def plain_backlog(client: Any, sequences: list[int], events: int, prefix: str = PREFIX) -> Backlog:
    """Simple one-member zips of *events* CEF events each (for restart tests), under *prefix*."""
    if not any(b["Name"] == BUCKET for b in client.list_buckets().get("Buckets", [])):
        client.create_bucket(Bucket=BUCKET)
    backlog = Backlog()
    for seq in sequences:
        lines = [
            cef_event(seq * 100_000 + i) + (f" tenant={prefix}" if prefix != PREFIX else "")
            for i in range(events)
        ]
        key = exporter_key(prefix, seq)
        client.put_object(Bucket=BUCKET, Key=key, Body=make_zip([("events.log", "\n".join(lines).encode())]))
        backlog.keys.append(key)
        backlog.events += [line.encode() for line in lines]
    return backlog


def write_config(path: Path, endpoint: str, output: dict[str, Any], **sections: Any) -> Path:
    """A forwarder config file for the test bucket; *sections* override or add sections."""
    source = {
        "bucket": BUCKET,
        "prefix": PREFIX,
        "endpoint_url": endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "zip_password": PASSWORD,
        "poll_interval_secs": 0.5,
        "bad_file_retry_secs": 0.05,
    }
    return write_test_config(path, source, output, sections)


def write_test_config(
    path: Path, source: dict[str, Any], output: dict[str, Any], sections: dict[str, Any]
) -> Path:
    """*source* and *output* with the tests' output, checkpoint and log settings, then
    *sections* merged in section by section, written to *path* (mode 0600)."""
    config: dict[str, Any] = {
        "source": source,
        "output": {
            "app_name": "cato",
            "hostname": "fwd-test",
            "retry_initial_secs": 0.1,
            "retry_max_secs": 0.5,
            **output,
        },
        "checkpoint": {"path": str(path.parent / "state" / "checkpoint.json")},
        "log": {"format": "json"},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    path.chmod(0o600)  # it holds secrets: readable by others, the forwarder would warn
    return path


def forwarder_env(**extra: str) -> dict[str, str]:
    """The environment a forwarder runs in: this checkout importable, no instance-metadata
    lookups (boto3 would otherwise ask 169.254.169.254 when it finds no credentials)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "AWS_CONFIG_FILE": "/nonexistent",
        **extra,
    }


def forwarder(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m forwarder ARGS`` as a user would, and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "forwarder", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or forwarder_env(),
    )


def start_forwarder(log_file: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m forwarder ARGS`` in the background, its output going to *log_file*."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "forwarder", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or forwarder_env(),
        )


RFC5424 = re.compile(rb"<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) - - - ")
RFC3164 = re.compile(rb"<(\d+)>([A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d) (\S+) (\S+): ")


def expected_pri(event: bytes, facility: int = 16) -> int:
    """PRI the forwarder must put on *event* (facility local0 by default)."""
    severity = cef_severity(event) if event.startswith(b"CEF:") else 5
    return facility * 8 + severity


def bodies(messages: list[bytes], header: str = "rfc5424", hostname: bytes = b"fwd-test") -> list[bytes]:
    """Check each message's header byte for byte and return the bodies."""
    pattern = {"rfc5424": RFC5424, "rfc3164": RFC3164}[header]
    result = []
    for message in messages:
        match = pattern.match(message)
        assert match, f"bad {header} header: {message[:120]!r}"
        body = message[match.end() :]
        assert int(match.group(1)) == expected_pri(body), message[:120]
        assert match.group(3) == hostname and match.group(4) == b"cato", message[:120]
        result.append(body)
    return result


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll *condition* until it holds; AssertionError naming *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(config: Path) -> dict[str, Any]:
    """``forwarder status --json`` of the (one-pipeline) *config*."""
    result = forwarder("status", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def wait_holding(config: Path) -> dict[str, Any]:
    """Wait until the forwarder of *config* says on_bad_file: stop holds it on a bad file;
    the status that says so (each later try records its plain error first for a moment)."""
    seen: dict[str, Any] = {}

    def holding() -> bool:
        seen.update(status_of(config))
        error = seen["last_error"] or {}
        return "on_bad_file: stop holds the position" in error.get("message", "")

    wait_until(holding, "the forwarder to say it holds the position")
    return seen


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one ERROR line a failed run logged (JSON logs), with no traceback anywhere."""
    errors = [json.loads(line)["message"] for line in result.stderr.splitlines() if '"ERROR"' in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return str(errors[0])
