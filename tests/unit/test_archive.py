"""Unit tests for forwarder.archive: zip, gzip or plain objects opened as member streams."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from forwarder.archive import archive_kind, open_members
from forwarder.errors import FetchError
from forwarder.records import split_records
from forwarder.samples import make_zip

LABEL = "s3://cato-logs/CATO00000000000000000001.zip"
PASSWORD = "s3cret-Zürich"


def read_all(path: Path, password: str = "") -> list[tuple[str, bytes]]:
    """(name, content) of every member of the object at *path*, read in turn."""
    return [(m.name, m.stream.read()) for m in open_members(path, LABEL, password)]


def write(tmp_path: Path, data: bytes, name: str = "CATO1.zip") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def zip_rejecting(password: str, members: list[tuple[str, bytes]]) -> bytes:
    """A ZipCrypto zip whose check byte tells *password* apart from the right one.

    A wrong password passes ZipCrypto's one-byte check 1 time in 256; such a zip would
    fail later as "damaged" instead, so the test builds one where the check catches it.
    """
    for _ in range(100):
        data = make_zip(members, password=PASSWORD)
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for name, _content in members:
                    archive.open(name, pwd=password.encode()).close()
        except RuntimeError:
            return data
    raise AssertionError("no zip rejected the wrong password in 100 tries")


def test_zip_members_come_in_name_order(tmp_path: Path) -> None:
    """Zip members are read sorted by name, whatever their order in the archive."""
    members = [("b.log", b"B\n"), ("a.log", b"A\n"), ("c/z.log", b"Z\n"), ("c/a.log", b"CA\n")]
    path = write(tmp_path, make_zip(members))
    assert read_all(path) == [
        ("a.log", b"A\n"),
        ("b.log", b"B\n"),
        ("c/a.log", b"CA\n"),
        ("c/z.log", b"Z\n"),
    ]


def test_directories_are_skipped(tmp_path: Path) -> None:
    """Directory entries of a zip are not members."""
    path = tmp_path / "CATO2.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("logs/", b"")
        archive.writestr("logs/events.log", b"CEF:0|x\n")
        archive.writestr("empty/", b"")
    assert read_all(path) == [("logs/events.log", b"CEF:0|x\n")]


def test_password_protected_members_read_with_the_password(tmp_path: Path) -> None:
    """ZipCrypto members are decrypted with source.zip_password."""
    members = [("a.log", b"CEF:0|first\n"), ("b.log", b'{"second": 2}\n')]
    path = write(tmp_path, make_zip(members, password=PASSWORD))
    assert read_all(path, PASSWORD) == members


def test_password_is_ignored_for_unencrypted_zips(tmp_path: Path) -> None:
    """A configured password does no harm when the zip is not encrypted."""
    path = write(tmp_path, make_zip([("a.log", b"plain\n")]))
    assert read_all(path, PASSWORD) == [("a.log", b"plain\n")]


def test_wrong_password_is_a_fetch_error_with_a_hint(tmp_path: Path) -> None:
    """A wrong password names the object and member and says to check source.zip_password."""
    path = write(tmp_path, zip_rejecting("wrong", [("a.log", b"CEF:0|x\n")]))
    with pytest.raises(FetchError) as info:
        read_all(path, "wrong")
    assert str(info.value) == f"{LABEL} member a.log: wrong zip password (check source.zip_password)"


def test_missing_password_is_a_fetch_error_with_a_hint(tmp_path: Path) -> None:
    """An encrypted member without a configured password says to set source.zip_password."""
    path = write(tmp_path, make_zip([("a.log", b"CEF:0|x\n")], password=PASSWORD))
    with pytest.raises(FetchError) as info:
        read_all(path)
    assert str(info.value) == (f"{LABEL} member a.log: password-protected member (set source.zip_password)")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (make_zip([("a.log", b"x\n")]), "zip"),
        (make_zip([]), "zip"),
        (gzip.compress(b"CEF:0|x\n"), "gzip"),
        (b"CEF:0|x\n", "plain"),
        (b"PK", "plain"),
        (b"", "plain"),
    ],
    ids=["zip", "empty-zip", "gzip", "plain", "short", "empty"],
)
def test_kind_is_told_by_magic_bytes_not_the_name(tmp_path: Path, data: bytes, kind: str) -> None:
    """archive_kind looks at the first bytes; every object here is named .zip."""
    assert archive_kind(write(tmp_path, data)) == kind


def test_gzip_object_is_one_unnamed_member(tmp_path: Path) -> None:
    """A gzip object (even named .zip) reads as one member named "" holding the inflated text."""
    path = write(tmp_path, gzip.compress(b"CEF:0|a\nCEF:0|b\n"))
    assert read_all(path) == [("", b"CEF:0|a\nCEF:0|b\n")]


def test_plain_object_is_one_unnamed_member(tmp_path: Path) -> None:
    """A plain-text object reads as one member named "" holding the bytes as they are."""
    path = write(tmp_path, b'{"a": 1}\r\n{"b": 2}\r\n')
    assert read_all(path) == [("", b'{"a": 1}\r\n{"b": 2}\r\n')]


@pytest.mark.parametrize(
    "data",
    [b"CEF:0|a\n\nCEF:0|b\n", gzip.compress(b"CEF:0|a\n\nCEF:0|b\n")],
    ids=["plain", "gzip"],
)
def test_plain_and_gzip_objects_split_into_records(tmp_path: Path, data: bytes) -> None:
    """Records of a plain or gzip object carry member "" and physical line numbers."""
    path = write(tmp_path, data)
    records = list(split_records(open_members(path, LABEL), LABEL))
    assert [(r.ordinal, r.member, r.line, r.text) for r in records] == [
        (0, "", 1, b"CEF:0|a"),
        (1, "", 3, b"CEF:0|b"),
    ]


def test_empty_zip_has_no_members(tmp_path: Path) -> None:
    """A zip with no entries gives no members (and so no records)."""
    assert read_all(write(tmp_path, make_zip([]))) == []


@pytest.mark.parametrize("keep", [0.5, 0.9], ids=["half", "most"])
def test_truncated_zip_is_a_fetch_error(tmp_path: Path, keep: float) -> None:
    """A zip cut short (no central directory) is a FetchError naming the object."""
    data = make_zip([("a.log", b"CEF:0|x\n" * 500), ("b.log", b"CEF:0|y\n" * 500)])
    path = write(tmp_path, data[: int(len(data) * keep)])
    with pytest.raises(FetchError) as info:
        read_all(path)
    assert str(info.value).startswith(f"{LABEL}: not a readable zip file (")


def test_damaged_local_header_is_a_fetch_error_naming_the_member(tmp_path: Path) -> None:
    """A member whose local header is damaged gives a FetchError naming it, not a zipfile error."""
    data = bytearray(make_zip([("a.log", b"CEF:0|a\n"), ("b.log", b"CEF:0|b\n")]))
    second = data.find(b"PK\x03\x04", 4)
    data[second : second + 4] = b"PK\x09\x09"
    path = write(tmp_path, bytes(data))
    with pytest.raises(FetchError) as info:
        read_all(path)
    assert str(info.value).startswith(f"{LABEL} member b.log: damaged archive, cannot read it (")


def test_damaged_gzip_is_a_fetch_error_when_read_as_records(tmp_path: Path) -> None:
    """A gzip stream cut short is reported as a damaged archive naming the object."""
    data = gzip.compress(b"CEF:0|x\n" * 10_000)
    path = write(tmp_path, data[: len(data) // 2])
    with pytest.raises(FetchError) as info:
        list(split_records(open_members(path, LABEL), LABEL))
    assert str(info.value).startswith(f"{LABEL}: damaged archive, cannot read it (")
