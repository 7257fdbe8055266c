"""Unit tests for forwarder.commands.cli: exit codes, one-line errors, help; S3 replaced by a fake client."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from forwarder import compose
from forwarder.commands.cli import main
from forwarder.config import SourceConfig
from forwarder.core.checkpoint import CheckpointStore, Position
from forwarder.samples import make_zip

NOISY = ("botocore", "boto3", "s3transfer", "urllib3")


@contextmanager
def fresh_process() -> Iterator[None]:
    """Run main() as in a new process: no log handlers yet; undo its logging setup afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY}
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, noisy_level in levels.items():
            logging.getLogger(name).setLevel(noisy_level)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No FORWARDER_CONFIG from the environment; signal handlers restored after `run`."""
    monkeypatch.delenv("FORWARDER_CONFIG", raising=False)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def run_main(argv: list[str]) -> int:
    with fresh_process():
        return main(argv)


class FakeS3Client:
    """The two calls S3Source makes, over in-memory objects."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_paginator(self, name: str) -> FakeS3Client:
        return self

    def paginate(self, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:  # noqa: N803
        yield {"Contents": [{"Key": k, "Size": len(v)} for k, v in sorted(self.objects.items())]}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803
        key = Key
        data = self.objects[key]
        return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def event(i: int) -> bytes:
    return f"CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|e{i}|5|".encode()


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The fake bucket's objects; the CLI's S3 client is the fake client over them."""
    objects: dict[str, bytes] = {
        "KEY/CATO10000.zip": make_zip([("a.log", event(3) + b"\n")], password="pw"),
        "KEY/CATO9999.zip": make_zip([("a.log", event(1) + b"\n" + event(2) + b"\n")], password="pw"),
    }

    def fake_client(source: SourceConfig) -> FakeS3Client:
        return FakeS3Client(objects)

    monkeypatch.setattr(compose, "make_s3_client", fake_client)  # every command builds through compose
    return objects


def write_config(tmp_path: Path, output: str = "", extra: str = "") -> Path:
    output = output or f"output:\n  protocol: file\n  path: {tmp_path / 'out.log'}\n"
    path = tmp_path / "forwarder.yaml"
    path.write_text(
        f"source:\n  bucket: cato-logs\n  prefix: KEY/\n  zip_password: pw\n  download_dir: {tmp_path}\n"
        "  poll_interval_secs: 0.1\n  bad_file_retry_secs: 0.01\n"
        f"{output}checkpoint:\n  path: {tmp_path / 'state' / 'cp.json'}\n{extra}",
        encoding="utf-8",
    )
    path.chmod(0o600)  # it holds a zip password: readable by others, the forwarder would warn
    return path


def log_lines(stderr: str) -> list[dict[str, Any]]:
    """The JSON log lines the forwarder wrote (its log is JSON when stderr is not a terminal)."""
    return [json.loads(line) for line in stderr.splitlines()]


# --- errors before the log is set up: one plain line -----------------------------------


def test_misspelt_key_exits_2_with_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt key exits 2 and prints one line naming the key and the right name, no traceback."""
    config = tmp_path / "forwarder.yaml"
    config.write_text("source:\n  bukcet: cato-logs\n", encoding="utf-8")
    assert run_main(["run", "--config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith('forwarder: error: source.bukcet: unknown key (did you mean "bucket"?)')
    assert "Traceback" not in err


def test_wrong_value_exits_2_with_the_exact_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong value is reported exactly as the config module words it."""
    config = tmp_path / "forwarder.yaml"
    config.write_text("source:\n  bucket: b\noutput:\n  port: sixty\n", encoding="utf-8")
    assert run_main(["check", "--config", str(config)]) == 2
    assert (
        capsys.readouterr().err == 'forwarder: error: output.port: expected an integer 1-65535, got "sixty"\n'
    )


def test_missing_config_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config file that does not exist exits 2 with one clear line naming it."""
    missing = tmp_path / "nope.yaml"
    assert run_main(["run", "--once", "--config", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"forwarder: error: {missing}: config file not found (start from config.example.yaml)\n"
    )


def test_config_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --config or FORWARDER_CONFIG, run exits 2 saying what is needed."""
    assert run_main(["run"]) == 2
    assert capsys.readouterr().err == (
        "forwarder: error: --config FILE is required (or set FORWARDER_CONFIG); see config.example.yaml\n"
    )


def test_forwarder_config_environment_variable_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """FORWARDER_CONFIG stands in for --config."""
    monkeypatch.setenv("FORWARDER_CONFIG", str(tmp_path / "from-env.yaml"))
    assert run_main(["check"]) == 2
    assert "from-env.yaml: config file not found" in capsys.readouterr().err


# --- help ------------------------------------------------------------------------------


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`forwarder` alone prints the help (commands, exit codes) and exits 2."""
    assert run_main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: forwarder")
    assert all(command in out for command in ("run", "check", "demo", "exit codes:"))


def test_run_help_mentions_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """`forwarder run --help` documents --once and the exit codes."""
    with pytest.raises(SystemExit) as info:
        run_main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--once" in out
    assert "exit codes:" in out
    for code in ("0 ", "2 ", "3 ", "4 "):
        assert f"\n  {code}" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the package version."""
    with pytest.raises(SystemExit) as info:
        run_main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == "forwarder 0.1.0\n"


@pytest.mark.parametrize("argv", [["frobnicate"], ["run", "--bogus"], ["run", "--log-level", "loud"]])
def test_bad_command_line_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command or option is a usage error: exit 2."""
    with pytest.raises(SystemExit) as info:
        run_main(argv)
    assert info.value.code == 2
    assert "usage: forwarder" in capsys.readouterr().err


# --- run with a fake bucket ------------------------------------------------------------


def test_run_once_forwards_everything_and_exits_0(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """run --once forwards every file in numeric order, saves the checkpoint and exits 0."""
    config = write_config(tmp_path)
    assert run_main(["run", "--once", "--config", str(config)]) == 0
    assert (tmp_path / "out.log").read_bytes() == event(1) + b"\n" + event(2) + b"\n" + event(3) + b"\n"
    store = CheckpointStore(tmp_path / "state" / "cp.json", "s3://cato-logs/KEY/")
    assert store.load() == Position({"sequence": 10000, "key": "KEY/CATO10000.zip", "complete": True}, 1)
    lines = log_lines(capsys.readouterr().err)
    assert lines[-1]["message"].startswith("done: 3 events from 2 files in ")
    assert {line["level"] for line in lines} == {"INFO"}

    assert run_main(["run", "--once", "--config", str(config)]) == 0  # nothing new: nothing sent twice
    assert (tmp_path / "out.log").read_bytes().count(b"\n") == 3


def test_run_once_with_a_corrupt_checkpoint_exits_3(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A corrupt checkpoint stops the run with exit 3 and one error line, never a restart from zero."""
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "cp.json").write_text("{ torn", encoding="utf-8")
    assert run_main(["run", "--once", "--config", str(config)]) == 3
    errors = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert "the checkpoint is corrupt" in errors[0]["message"]
    assert not (tmp_path / "out.log").exists()


def test_run_with_a_locked_checkpoint_exits_3(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A second forwarder on the same checkpoint exits 3 saying another one holds it."""
    config = write_config(tmp_path)
    other = CheckpointStore(tmp_path / "state" / "cp.json", "s3://cato-logs/KEY/")
    other.lock()
    try:
        assert run_main(["run", "--once", "--config", str(config)]) == 3
    finally:
        other.unlock()
    errors = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "ERROR"]
    assert "another forwarder is using this checkpoint" in errors[0]["message"]


def test_run_once_with_an_unreadable_file_exits_4(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that cannot be read makes run --once exit 4, naming the object."""
    bucket["KEY/CATO10000.zip"] = b"PK\x03\x04 cut short"
    config = write_config(tmp_path)
    assert run_main(["run", "--once", "--config", str(config)]) == 4
    errors = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "ERROR"]
    assert errors[0]["message"].startswith("s3://cato-logs/KEY/CATO10000.zip: not a readable zip file")
    assert (tmp_path / "out.log").read_bytes() == event(1) + b"\n" + event(2) + b"\n"


def test_run_once_with_the_collector_down_exits_4(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A collector that refuses every attempt makes run --once give up and exit 4."""
    import socket

    with socket.socket() as bound:  # bound, not listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        output = (
            f"output:\n  protocol: tcp\n  port: {bound.getsockname()[1]}\n"
            "  retry_initial_secs: 0.01\n  retry_max_secs: 0.02\n"
        )
        config = write_config(tmp_path, output=output)
        assert run_main(["run", "--once", "--config", str(config)]) == 4
    errors = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "ERROR"]
    assert errors[-1]["message"].endswith(
        "connection refused (is the collector running and listening on this port?) (gave up after 5 attempts)"
    )
    assert CheckpointStore(tmp_path / "state" / "cp.json", "s3://cato-logs/KEY/").load() == Position(
        {"sequence": 9999, "key": "KEY/CATO9999.zip"}, 0
    )


def test_run_stops_cleanly_on_sigterm(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`run` keeps polling until SIGTERM, then saves, closes and exits 0."""
    config = write_config(tmp_path)
    out = tmp_path / "out.log"

    def terminate_when_delivered() -> None:
        for _ in range(500):
            if out.exists() and out.read_bytes().count(b"\n") == 3:
                break
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_delivered, daemon=True)
    killer.start()
    assert run_main(["run", "--config", str(config)]) == 0
    killer.join(5)
    assert out.read_bytes().count(b"\n") == 3
    messages = [line["message"] for line in log_lines(capsys.readouterr().err)]
    assert "SIGTERM received: finishing the batches in flight, then exiting" in messages


def test_check_reports_each_part(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` prints one ok line per part (config, bucket, checkpoint, collector) and exits 0."""
    config = write_config(tmp_path)
    assert run_main(["check", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the checks; then the config
    assert [line.split(":")[0] for line in lines] == [
        "ok   config", "ok   bucket", "ok   checkpoint", "ok   dead letters", "ok   collector"
    ]  # fmt: skip
    assert "2 files, KEY/CATO9999.zip .. KEY/CATO10000.zip" in lines[1]
    assert lines[3].endswith("dead_letter.jsonl: none yet")


def test_check_reports_the_dead_letter_file(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the file holds so far; FAIL (exit 4) when it could not be written."""
    letters = tmp_path / "letters" / "dead.jsonl"
    config = write_config(tmp_path, extra=f"parser:\n  dead_letter_path: {letters}\n")
    letters.parent.mkdir()
    letters.write_text('{"reason": "a"}\n{"reason": "b"}\n')
    assert run_main(["check", "--config", str(config)]) == 0
    assert f"ok   dead letters: {letters}: 2 records set aside so far" in capsys.readouterr().out
    letters.unlink()
    letters.parent.rmdir()
    letters.parent.write_text("a file where the directory should be")
    assert run_main(["check", "--config", str(config)]) == 4
    assert f"FAIL dead letters: {letters}: {letters.parent} is not a directory" in capsys.readouterr().out


def test_check_exits_4_when_a_part_fails(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`check` reports a collector it cannot reach as FAIL and exits 4."""
    import socket

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        config = write_config(tmp_path, output=f"output:\n  port: {bound.getsockname()[1]}\n")
        assert run_main(["check", "--config", str(config)]) == 4
    lines = capsys.readouterr().out.split("\n\n")[0].splitlines()  # the checks; then the config
    assert lines[-1].startswith("FAIL collector: tcp://127.0.0.1:")
    assert "connection refused" in lines[-1]


def test_status_shows_the_dead_letter_file(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` says how many records were set aside, and the last one: where and why."""
    letters = tmp_path / "dead.jsonl"
    config = write_config(tmp_path, extra=f"parser:\n  dead_letter_path: {letters}\n")
    assert run_main(["status", "--config", str(config)]) == 0
    assert f"dead letters: 0 records in {letters}\n" in capsys.readouterr().out
    first = {"at": "2026-11-28T07:00:00Z", "object": "s3://b/k1", "line": 3, "outcome": "skipped"}
    first["reason"] = "a"
    last = {**first, "object": "s3://b/k2", "line": 7, "outcome": "truncated", "reason": "too big"}
    letters.write_text(json.dumps(first) + "\n" + json.dumps(last) + "\n")
    assert run_main(["status", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"dead letters: 2 records in {letters}\n" in out
    assert "    last: s3://b/k2 line 7: truncated, too big (2026-11-28T07:00:00Z)\n" in out
    assert run_main(["status", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["dead_letters"]
    assert shown == {"path": str(letters), "records": 2, "last": last}


def test_dead_letter_file_edge_cases(
    tmp_path: Path, bucket: dict[str, bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """A last line longer than one read (a 1 MiB record) is still found; a directory where the
    file should be is a FAIL line in check and a line in status, never a traceback."""
    letters = tmp_path / "dead.jsonl"
    config = write_config(tmp_path, extra=f"parser:\n  dead_letter_path: {letters}\n")
    big = {"at": "2026-11-28T07:00:00Z", "object": "s3://b/k", "outcome": "skipped", "reason": "x" * 200_000}
    letters.write_text('{"reason": "first"}\n' + json.dumps(big) + "\n")
    assert run_main(["status", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dead_letters"]["last"] == big
    letters.unlink()
    letters.mkdir()
    assert run_main(["check", "--config", str(config)]) == 4
    assert f"FAIL dead letters: {letters} is a directory" in capsys.readouterr().out
    assert run_main(["status", "--config", str(config)]) == 0
    assert f"dead letters: {letters} cannot be read (Is a directory)" in capsys.readouterr().out
