"""kind events_integration, discovery: list, against moto's S3 server and a real rsyslog: gzip
NDJSON objects under UUID-like keys, late objects, restarts inside an object, odd and bad objects."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from forwarder.formats import cef
from forwarder.formats.catofields import cef_from_json
from tests.support.backlog import bodies, forwarder, status_of, wait_until
from tests.support.pushed import BUCKET, PREFIX, put_object, uuid_key, write_events_config

pytestmark = pytest.mark.integration


def test_uuid_keys_go_out_oldest_first_and_a_late_object_with_an_earlier_key_arrives_once(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """Keys that do not sort by time go out by LastModified; an object written later whose key
    sorts before every other is found by a later poll; every event arrives exactly once."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    keys = [uuid_key(n) for n in range(1, 6)]
    assert keys != sorted(keys)
    expected: list[bytes] = []
    for n in range(1, 6):
        expected += put_object(client, n, 20)
        time.sleep(1.05)  # S3 lists LastModified in whole seconds
    rsyslog = collector("tcp")
    config = write_events_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port}
    )
    process = background("run", "--config", str(config))
    assert bodies(rsyslog.wait_for(len(expected))) == expected

    late = f"{PREFIX}00000000-late.gz"  # sorts before every key done
    assert late < min(keys)
    expected += put_object(client, 99, 7, key=late)
    rsyslog.wait_for(len(expected))
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert bodies(rsyslog.assert_quiet(len(expected))) == expected
    done = status_of(config)["position"]["ledger"]["done"]
    assert sorted(done) == sorted(k[len(PREFIX) :] for k in [*keys, late])
    text = forwarder("status", "--config", str(config)).stdout
    assert f"position:     last done s3://{BUCKET}/{late}; ledger: 6 objects done since " in text
    assert "pending:      0\n" in text


def test_the_demo_of_the_kind_shows_a_late_object_found() -> None:
    """``forwarder demo --kind events_integration`` runs on its own and every event arrives once."""
    result = forwarder("demo", "--kind", "events_integration", "--files", "3", "--events", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The next poll sent 4 events: that object's, and nothing else." in result.stdout
    assert "Demo finished: every event arrived exactly once." in result.stdout


def test_a_restart_mid_object_resumes_inside_it(
    s3: Any, collector: Any, tmp_path: Path, background: Callable[..., subprocess.Popen[bytes]]
) -> None:
    """SIGTERM while an object is half sent; the next run resumes after the records delivered:
    nothing lost, nothing repeated."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    expected = put_object(client, 1, 3000)
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_events_per_sec": 1500}
    config = write_events_config(tmp_path / "f.yaml", s3.endpoint_url, output, batch={"max_events": 100})
    process = background("run", "--config", str(config))
    wait_until(lambda: len(rsyslog.messages()) >= 500, "the object's first batches")
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert state["cursor"]["object"]["key"] == uuid_key(1)
    assert 0 < state["records"] < 3000
    rsyslog.assert_quiet(state["records"])  # what the checkpoint says, no more

    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    assert f"resuming after record {state['records']}" in result.stderr
    assert bodies(rsyslog.assert_quiet(len(expected))) == expected


def test_a_gz_that_is_plain_text_is_read_and_a_corrupt_gzip_is_quarantined(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """The gzip signature decides: a .gz some client decompressed (plain NDJSON) is read; a
    damaged gzip is a bad file that on_bad_file: quarantine records with its reason."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    first = put_object(client, 1, 5)
    time.sleep(1.05)
    plain = put_object(client, 2, 5, gz=False)
    time.sleep(1.05)
    broken = put_object(client, 3, 500)
    data = client.get_object(Bucket=BUCKET, Key=uuid_key(3))["Body"].read()
    client.put_object(Bucket=BUCKET, Key=uuid_key(3), Body=data[: len(data) // 2])  # cut short
    time.sleep(1.05)
    last = put_object(client, 4, 5)
    rsyslog = collector("tcp")
    config = write_events_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port},
        source={"on_bad_file": "quarantine", "max_attempts": 2},
    )  # fmt: skip
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    # the damaged object's batch never completes: none of it goes out (batch.max_events 1000)
    assert bodies(rsyslog.assert_quiet(15, settle=0.3)) == first + plain + last
    assert len(broken) == 500
    quarantined = status_of(config)["quarantined"]
    assert [q["key"] for q in quarantined] == [uuid_key(3)]
    assert "Compressed file ended" in quarantined[0]["reason"] or "gzip" in quarantined[0]["reason"]


def test_cef_encoding_of_typed_events_arrives_byte_for_byte(s3: Any, collector: Any, tmp_path: Path) -> None:
    """output.encoding: cef renders the typed NDJSON (arrays joined, booleans true/false) and
    rsyslog receives exactly that text, the header time taken from the event's time."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    lines = put_object(client, 1, 30)
    rsyslog = collector("tcp")
    config = write_events_config(
        tmp_path / "f.yaml", s3.endpoint_url, {"protocol": "tcp", "port": rsyslog.port, "encoding": "cef"}
    )
    assert forwarder("run", "--config", str(config), "--once").returncode == 0
    messages = rsyslog.assert_quiet(len(lines))
    expected = [cef.render(cef_from_json(json.loads(line))).encode() for line in lines]
    assert [m.split(b" - - - ", 1)[1] for m in messages] == expected
    assert messages[0].startswith(b"<133>1 2025-11-18T15:02:29.991Z fwd-test cato - - - CEF:0|")
    assert b" app_stack=Office365,Microsoft " in messages[0] and b" static_host=true " in messages[0]


def test_an_xdr_event_over_5_mb_is_read_whole_and_cut_to_size_by_output_oversize(
    s3: Any, collector: Any, tmp_path: Path
) -> None:
    """With the kind's 64 MiB record limit a 6 MB raw_data event is read (not a bad record),
    truncated to output.max_message_bytes, and kept whole in the dead-letter file."""
    client = s3.client()
    client.create_bucket(Bucket=BUCKET)
    big = json.dumps({"event_type": "XDR", "time": 1763478148991, "raw_data": "x" * 6_000_000}).encode()
    small = json.dumps({"event_type": "Security", "time": 1763478148992}).encode()
    client.put_object(Bucket=BUCKET, Key=uuid_key(1), Body=gzip.compress(big + b"\n" + small + b"\n"))
    rsyslog = collector("tcp")
    output = {"protocol": "tcp", "port": rsyslog.port, "max_message_bytes": 65536}
    config = write_events_config(tmp_path / "f.yaml", s3.endpoint_url, output)
    result = forwarder("run", "--config", str(config), "--once")
    assert result.returncode == 0, result.stderr
    first, second = rsyslog.assert_quiet(2)
    body = bodies([first])[0]
    assert len(first) == 65536 and big.startswith(body)
    assert bodies([second]) == [small]
    letters = [
        json.loads(line) for line in (tmp_path / "state" / "dead_letter.jsonl").read_text().splitlines()
    ]
    assert [(d["outcome"], d["text"].encode()) for d in letters] == [("truncated", big)]
