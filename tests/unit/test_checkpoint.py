"""Unit tests for forwarder.core.checkpoint: versioned JSON, atomic writes, loud errors, a lock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from forwarder.core.checkpoint import CheckpointStore, Position
from forwarder.errors import CheckpointError
from forwarder.sources.base import Gap

SOURCE = "s3://cato-logs/KEY/"
KEY = "KEY/CATO00000000000000007007.zip"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CheckpointStore]:
    store = CheckpointStore(tmp_path / "state" / "checkpoint.json", SOURCE)
    yield store
    store.unlock()


def write_raw(store: CheckpointStore, text: str) -> None:
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(text, encoding="utf-8")


def at(sequence: int, key: str, records: int, complete: bool) -> Position:
    """A log exporter's position: *records* of file *sequence* delivered, or all (*complete*)."""
    cursor: dict[str, object] = {"sequence": sequence, "key": key}
    if complete:
        cursor["complete"] = True
    return Position(cursor, records)


def valid(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "version": 2,
        "source": SOURCE,
        "cursor": {"sequence": 7007, "key": KEY},
        "records": 1000,
        "updated_at": "2026-11-28T07:25:12Z",
    }
    data.update(changes)
    return data


def version_1(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "version": 1,
        "source": SOURCE,
        "sequence": 7007,
        "key": KEY,
        "records": 1000,
        "complete": False,
        "updated_at": "2026-11-28T07:25:12Z",
    }
    data.update(changes)
    return data


def test_missing_checkpoint_is_a_fresh_start(store: CheckpointStore) -> None:
    """No checkpoint file means no position (start from source.start), not an error."""
    assert store.load() is None


@pytest.mark.parametrize(
    "position",
    [
        at(7007, KEY, 1000, False),
        at(7007, KEY, 2345, True),
        at(0, "", 0, False),
        at(10**19, "KEY/CATO99999999999999999999.zip", 0, True),
    ],
)
def test_save_then_load_round_trip(store: CheckpointStore, position: Position) -> None:
    """What save() wrote, load() reads back as the same Position."""
    store.save(position)
    assert store.load() == position
    assert CheckpointStore(store.path, SOURCE).load() == position


def test_saved_file_is_versioned_json_naming_the_source(store: CheckpointStore) -> None:
    """The file is JSON with version 2, the source id, the source's cursor, the record count,
    notes and an update time."""
    store.save(at(7007, KEY, 1000, False))
    data = json.loads(store.path.read_text(encoding="utf-8"))
    assert {k: v for k, v in data.items() if k != "updated_at"} == {
        "version": 2,
        "source": SOURCE,
        "cursor": {"sequence": 7007, "key": KEY},
        "records": 1000,
        "gaps": [],
        "quarantined": [],
        "failure": None,
        "last_error": None,
    }
    assert data["updated_at"].endswith("Z")


def test_save_replaces_atomically_and_leaves_no_temp_files(store: CheckpointStore) -> None:
    """Each save replaces the file whole; only the checkpoint itself is left in its directory."""
    for records in range(0, 5000, 1000):
        store.save(at(7007, KEY, records, False))
    store.save(at(7007, KEY, 5000, True))
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["checkpoint.json"]
    assert store.load() == at(7007, KEY, 5000, True)


def test_save_creates_the_directory(tmp_path: Path) -> None:
    """A checkpoint path in a directory that does not exist yet is created on save."""
    store = CheckpointStore(tmp_path / "a" / "b" / "cp.json", SOURCE)
    store.save(at(1, "k", 0, False))
    assert store.load() == at(1, "k", 0, False)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json at all",
        "[]",
        "null",
        json.dumps(valid(version=3)),
        json.dumps({k: v for k, v in valid().items() if k != "version"}),
        json.dumps({k: v for k, v in valid().items() if k != "records"}),
        json.dumps({k: v for k, v in valid().items() if k != "cursor"}),
        json.dumps(valid(cursor="7007")),
        json.dumps(valid(cursor=[7007])),
        json.dumps(valid(records=1.5)),
        json.dumps(valid(records=True)),
        json.dumps(valid(records=-1)),
        json.dumps({k: v for k, v in version_1().items() if k != "complete"}),
        json.dumps(version_1(complete="yes")),
        json.dumps({k: v for k, v in version_1().items() if k != "records"}),
    ],
    ids=[
        "empty", "truncated", "text", "list", "null", "version-3", "no-version", "no-records",
        "no-cursor", "string-cursor", "list-cursor", "float-records", "bool-records",
        "negative-records", "v1-no-complete", "v1-string-complete", "v1-no-records",
    ],
)  # fmt: skip
def test_corrupt_checkpoint_is_a_loud_error(store: CheckpointStore, text: str) -> None:
    """A checkpoint that is not a valid version 2 (or 1) object is an error saying "corrupt",
    never a reset."""
    write_raw(store, text)
    with pytest.raises(CheckpointError) as info:
        store.load()
    message = str(info.value)
    assert message.startswith(f"{store.path}: the checkpoint is corrupt (")
    assert message.endswith("fix or remove it (removing it restarts from source.start)")
    assert "\n" not in message


def test_wrong_version_says_which_version_is_expected(store: CheckpointStore) -> None:
    """A checkpoint of another format version is corrupt, and the message names version 2."""
    write_raw(store, json.dumps(valid(version=3)))
    with pytest.raises(CheckpointError, match="corrupt .*expected a version 2 checkpoint"):
        store.load()


@pytest.mark.parametrize(
    ("changes", "position"),
    [
        ({}, at(7007, KEY, 1000, False)),
        ({"complete": True}, at(7007, KEY, 1000, True)),
        ({"sequence": None, "key": "", "records": 0}, None),
    ],
)
def test_version_1_is_read_and_rewritten_as_version_2(
    store: CheckpointStore, changes: dict[str, object], position: Position | None
) -> None:
    """A checkpoint of the previous format (sequence, key, complete at the top) reads as the same
    position, its notes kept; the next save writes version 2."""
    failure = {"sequence": 7008, "key": "K/7008", "attempts": 2, "reason": "corrupt", "since": "x"}
    write_raw(
        store, json.dumps(version_1(gaps=[{"first": 1, "last": 2, "at": "t"}], failure=failure, **changes))
    )
    assert store.load() == position
    assert store.gaps == [{"first": 1, "last": 2, "at": "t"}]
    assert store.failure is not None and (store.failure.key, store.failure.attempts) == ("K/7008", 2)
    store.save(position)
    assert json.loads(store.path.read_text())["version"] == 2
    assert CheckpointStore(store.path, SOURCE).load() == position


def test_checkpoint_of_another_source_is_refused(store: CheckpointStore) -> None:
    """A checkpoint written for another bucket/prefix is an error naming both sources."""
    write_raw(store, json.dumps(valid(source="s3://other-bucket/")))
    with pytest.raises(CheckpointError) as info:
        store.load()
    assert str(info.value) == (
        f"{store.path}: this checkpoint belongs to s3://other-bucket/, not {SOURCE}; "
        "give each source its own checkpoint.path"
    )


def test_unreadable_checkpoint_is_an_error(tmp_path: Path) -> None:
    """A checkpoint path that cannot be read (a directory) is a CheckpointError."""
    (tmp_path / "cp.json").mkdir()
    with pytest.raises(CheckpointError, match="cannot read the checkpoint"):
        CheckpointStore(tmp_path / "cp.json", SOURCE).load()


def test_second_lock_on_the_same_path_is_refused(store: CheckpointStore) -> None:
    """While one store holds the lock, another on the same path fails saying another forwarder holds it."""
    store.lock()
    other = CheckpointStore(store.path, SOURCE)
    with pytest.raises(CheckpointError) as info:
        other.lock()
    assert str(info.value).startswith(
        f"{store.path}: another forwarder is using this checkpoint (lock {store.path}.lock is held)"
    )
    store.unlock()
    other.lock()  # free again once released
    other.unlock()


def test_lock_creates_the_directory_and_a_lock_file(tmp_path: Path) -> None:
    """lock() creates the checkpoint's directory and a .lock file beside the checkpoint."""
    store = CheckpointStore(tmp_path / "new" / "cp.json", SOURCE)
    store.lock()
    try:
        assert (tmp_path / "new" / "cp.json.lock").exists()
    finally:
        store.unlock()


def test_lock_in_an_impossible_place_is_an_error(tmp_path: Path) -> None:
    """A checkpoint under a regular file cannot be locked: CheckpointError, not OSError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot create the lock file"):
        CheckpointStore(tmp_path / "file" / "cp.json", SOURCE).lock()


def test_unwritable_location_is_an_error_on_save(tmp_path: Path) -> None:
    """Saving under a path whose parent is a regular file fails with CheckpointError."""
    (tmp_path / "file").write_text("x")
    store = CheckpointStore(tmp_path / "file" / "cp.json", SOURCE)
    with pytest.raises(CheckpointError) as info:
        store.save(at(1, "k", 0, False))
    assert str(info.value).startswith(f"{store.path}: cannot write the checkpoint (")
    assert str(info.value).endswith(
        "this pipeline stops (what it sent since the last write is sent again once restarted)"
    )


def test_failed_save_keeps_the_old_checkpoint_and_no_temp_file(tmp_path: Path) -> None:
    """When the rename fails (the target is a directory), no temp file is left behind."""
    target = tmp_path / "cp.json"
    target.mkdir()
    store = CheckpointStore(target, SOURCE)
    with pytest.raises(CheckpointError, match="cannot write the checkpoint"):
        store.save(at(1, "k", 0, False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cp.json"]


def test_notes_survive_a_restart(store: CheckpointStore) -> None:
    """Gaps, quarantined files, the failing file's attempts and the last error are saved and read back."""
    store.save(at(7000, KEY, 0, True))
    store.record_gap(Gap(7001, 7003, 3, "files 7001-7003"))
    store.record_quarantine({"sequence": 7004, "key": "K/7004"}, "wrong zip password")
    store.save(at(7004, "K/7004", 0, True))
    assert store.record_failure("K/7005", "corrupt").attempts == 1
    assert store.record_failure("K/7005", "corrupt again").attempts == 2
    store.save(store.position)
    again = CheckpointStore(store.path, SOURCE)
    assert again.load() == at(7004, "K/7004", 0, True)
    assert [(g["first"], g["last"], g["text"]) for g in again.gaps] == [(7001, 7003, "files 7001-7003")]
    assert [(q["sequence"], q["reason"]) for q in again.quarantined] == [(7004, "wrong zip password")]
    assert again.failure is not None and (again.failure.key, again.failure.attempts) == ("K/7005", 2)
    assert again.last_error is not None and again.last_error["message"] == "K/7005: corrupt again"
    assert again.record_failure("K/7005", "still").attempts == 3  # the count goes on across restarts


def test_failure_clears_when_told_and_the_clearing_is_saved(store: CheckpointStore) -> None:
    """clear_failure (the pipeline got past the object) drops the note with the next save; a
    failure at another object starts counting afresh."""
    store.record_failure("K/7005", "corrupt")
    assert store.record_failure("K/7006", "other").attempts == 1
    store.clear_failure()
    store.save(at(7006, "K/7006", 20, True))
    again = CheckpointStore(store.path, SOURCE)
    again.load()
    assert again.failure is None


def test_notes_before_any_position(store: CheckpointStore) -> None:
    """An error before anything was delivered is saved without inventing a position."""
    assert store.load() is None
    store.record_error("listing s3://b/p: AccessDenied")
    store.save(None)
    again = CheckpointStore(store.path, SOURCE)
    assert again.load() is None
    assert again.last_error is not None and "AccessDenied" in again.last_error["message"]
