"""Unit tests for forwarder.core.deadletter and the pipeline's use of it: nothing dropped without a trace."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from forwarder.compose import build_pipeline
from forwarder.config import Config, parse_config
from forwarder.config.checks import state_files
from forwarder.core.deadletter import DeadLetter
from forwarder.core.pipeline import Pipeline
from forwarder.errors import CheckpointError, SendError
from forwarder.formats.records import Record
from forwarder.samples import make_zip
from forwarder.sources.base import Cursor, LogObject, Unpack
from forwarder.transports.base import AckedOnWrite

BUCKET, KEY = "cato-logs", "KEY/CATO00000000000000000007.zip"


class OneFile:
    """The whole source interface over one in-memory object."""

    id = f"s3://{BUCKET}/KEY/"
    unpack = Unpack()

    def __init__(self, tmp_path: Path, body: bytes) -> None:
        self._body, self._dir = body, tmp_path

    def start(self) -> Cursor:
        return {"object": KEY}

    def pending(self, cursor: Cursor) -> Iterator[LogObject]:
        if not cursor.get("done"):
            yield LogObject(KEY, len(self._body))

    def inside(self, obj: LogObject, cursor: Cursor) -> Cursor:
        return {"object": obj.key}

    def identity(self, obj: LogObject) -> dict[str, str]:
        return {"key": obj.key}

    def committed(self, cursor: Cursor) -> None:
        pass

    def close(self) -> None:
        pass

    def after(self, obj: LogObject, cursor: Cursor) -> Cursor:
        return {"object": obj.key, "done": True}

    def describe(self, cursor: Cursor, records: int = 0) -> str:
        return f"{cursor}, {records} records"

    def backlog(self, cursor: Cursor | None) -> tuple[int, str] | None:
        return None

    def check(self, cursor: Cursor | None) -> tuple[bool, str]:
        return True, "in memory"

    def fetch(self, obj: LogObject) -> Path:
        path = self._dir / "download.part"
        path.write_bytes(self._body)
        return path

    def label(self, obj: LogObject) -> str:
        return f"s3://{BUCKET}/{obj.key}"


class Transport(AckedOnWrite):
    """Takes batches; the attempts listed in *failing* fail."""

    label = "fake://collector"
    paces_itself = False
    max_message_bytes: int | None = None
    max_message_bytes = None

    def __init__(self, failing: set[int] | None = None) -> None:
        self.sent: list[bytes] = []
        self.attempts = 0
        self._failing = failing or set()

    def write(self, messages: list[bytes]) -> None:
        self.attempts += 1
        if self.attempts in self._failing:
            raise SendError("fake://collector: refused")
        self.sent += messages
        self._delivered()

    def probe(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_config(tmp_path: Path, extra: str = "", max_events: int = 1000, header: str = "none") -> Config:
    return parse_config(
        f"source:\n  bucket: {BUCKET}\n  prefix: KEY/\n  prefetch_files: 0\n"
        f"output:\n  header: {header}\n  retry_initial_secs: 0.01\n  retry_max_secs: 0.02\n"
        f"checkpoint:\n  path: {tmp_path / 'state' / 'checkpoint.json'}\n"
        f"batch:\n  max_events: {max_events}\n{extra}",
        env={},
    )


def run(
    tmp_path: Path,
    body: bytes,
    transport: Transport,
    extra: str = "",
    max_events: int = 1000,
    header: str = "none",
) -> Pipeline:
    config = make_config(tmp_path, extra, max_events, header).pipeline()
    source = OneFile(tmp_path, make_zip([("events.log", body)]))
    pipeline = build_pipeline(config, once=True, source=source, transport=cast(Any, transport))
    pipeline.open()
    try:
        pipeline.run_pass()
    finally:
        pipeline.close()
    return pipeline


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


GOOD_CEF = b"CEF:0|Cato Networks||1.0|Security|Block|7|rt=Mon May 18 14:49:40 UTC 2020 msg=ok"
MIXED = b"\n".join(
    [
        GOOD_CEF,  # 1
        b"CEF:0|Cato Networks|SASE|1.0|Security",  # 2: malformed CEF (header cut short)
        b'{"event_type": "Security", "time": 1',  # 3: invalid JSON (cut short)
        b'[{"a": 1}, {"b": 2}]',  # 4: two records
        b"CEF:0|Cato|SASE|1.0|x|y|5|msg=Z\xfcrich",  # 5: invalid UTF-8
        b"hello, not an event",  # 6
        b'{"a": nope}',  # 7: invalid JSON inside {...}: caught by validate: full
        b'{"ok": true}',  # 8
    ]
)


@pytest.mark.parametrize(
    ("validate", "encoding"), [("light", "passthrough"), ("full", "passthrough"), ("light", "json")]
)
def test_every_bad_record_is_in_the_dead_letter_file_with_line_and_reason(
    tmp_path: Path, validate: str, encoding: str
) -> None:
    """Good events go out; each bad one is a dead-letter line (object, member, line, reason, text)."""
    transport = Transport()
    extra = f"parser:\n  validate: {validate}\n"
    pipeline = run(tmp_path, MIXED, transport, extra, header=f"rfc5424\n  encoding: {encoding}")
    bad_json = validate == "full" or encoding != "passthrough"
    sent = [GOOD_CEF, b'{"a": 1}', b'{"b": 2}', b"CEF:0|Cato|SASE|1.0|x|y|5|msg=Z\xef\xbf\xbdrich"]
    bodies = [m.split(b" - - - ", 1)[1] for m in transport.sent]
    if encoding == "json":
        bodies = [b if b.startswith(b'{"') and b"cefVersion" not in b else b"CEF" for b in bodies]
        sent = [b"CEF" if s.startswith(b"CEF") else s for s in sent]
    assert bodies == sent + ([] if bad_json else [b'{"a": nope}']) + [b'{"ok": true}']
    found = entries(tmp_path / "state" / "dead_letter.jsonl")
    expected = [
        (2, "skipped", "CEF header has 4 of its 7 '|'-separated fields"),
        (3, "skipped", "JSON value not complete on its line"),
        (6, "skipped", "not CEF or JSON (starts with b'hello, not an event')"),
        (5, "repaired", "invalid UTF-8 at byte 31: forwarded with U+FFFD replacement characters"),
    ]
    if bad_json:
        expected.append((7, "skipped", "invalid JSON: Expecting value (column 7)"))
    assert sorted((e["line"], e["outcome"], e["reason"]) for e in found) == sorted(expected)
    for entry in found:
        assert entry["object"] == f"s3://{BUCKET}/{KEY}" and entry["member"] == "events.log"
        assert entry["text"].encode("utf-8", "replace") or entry["line"] == 0
    [utf8] = [e for e in found if e["outcome"] == "repaired"]
    assert base64.b64decode(utf8["text_base64"]) == b"CEF:0|Cato|SASE|1.0|x|y|5|msg=Z\xfcrich"
    assert pipeline.stats.bad_records == len(expected) - 1 and pipeline.stats.repaired_records == 1
    state = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    assert (state["records"], state["cursor"]) == (9, {"object": KEY, "done": True})


def test_a_restart_resends_the_array_objects_not_delivered_and_no_others(tmp_path: Path) -> None:
    """Records split from a JSON array keep stable ordinals: after a refused batch, a restart
    sends exactly the objects after the checkpoint."""
    body = b"[" + b", ".join(b'{"n": %d}' % i for i in range(7)) + b"]\n"
    first = Transport(failing={3, 4, 5, 6, 7})
    with pytest.raises(SendError):
        run(tmp_path, body, first, max_events=2)
    assert first.sent == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    second = Transport()
    run(tmp_path, body, second, max_events=2)
    assert second.sent == [b'{"n": 4}', b'{"n": 5}', b'{"n": 6}']


def test_dead_letter_lines_are_durable_before_the_checkpoint_moves(tmp_path: Path) -> None:
    """A refused batch leaves the checkpoint before the bad record and the file without it."""
    body = b"not an event\n" + GOOD_CEF + b"\n"
    with pytest.raises(SendError):
        run(tmp_path, body, Transport(failing={1, 2, 3, 4, 5}))
    assert not (tmp_path / "state" / "dead_letter.jsonl").exists()
    run(tmp_path, body, Transport())
    assert [e["line"] for e in entries(tmp_path / "state" / "dead_letter.jsonl")] == [1]


def test_entry_format_and_default_path(tmp_path: Path) -> None:
    """One JSON line per record: text (U+FFFD for bad bytes) and text_base64 only when needed."""
    checkpoint = tmp_path / "s" / "checkpoint.json"
    config = parse_config(f"source: {{bucket: b}}\ncheckpoint: {{path: {checkpoint}}}\n")
    letter = DeadLetter(state_files(config.pipeline())["parser.dead_letter_path"])
    assert letter.path == tmp_path / "s" / "dead_letter.jsonl"
    letter.add("s3://b/k", Record(4, "m", 5, b"caf\xe9", "bad", "r"), "why")
    letter.add("s3://b/k", Record(5, "m", 6, "café".encode(), "json"), "fixed", "repaired")
    letter.commit()
    first, second = entries(letter.path)
    assert {k: v for k, v in first.items() if k != "at"} == {
        "object": "s3://b/k",
        "member": "m",
        "line": 5,
        "record": 4,
        "outcome": "skipped",
        "reason": "why",
        "text": "caf\ufffd",
        "text_base64": base64.b64encode(b"caf\xe9").decode(),
    }
    assert second["text"] == "café" and "text_base64" not in second and letter.written == 2


def test_an_unwritable_dead_letter_file_stops_the_forwarder(tmp_path: Path) -> None:
    """Losing the trace is not an option: CheckpointError (exit 3)."""
    (tmp_path / "file").write_text("")
    letter = DeadLetter(tmp_path / "file" / "dead.jsonl")
    letter.add("s3://b/k", Record(0, "", 1, b"x", "bad", "r"), "why")
    with pytest.raises(CheckpointError, match="cannot write the dead-letter file"):
        letter.commit()
