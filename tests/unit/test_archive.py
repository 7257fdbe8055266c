"""Unit tests for forwarder.formats.archive: zip, gzip or plain objects opened as member streams."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from forwarder.errors import FetchError
from forwarder.formats import archive as archive_module
from forwarder.formats.archive import ZipCryptoStream, archive_kind, fast_decrypter, open_members
from forwarder.formats.records import split_records
from forwarder.samples import ZipCryptoEncrypter, cef_event, make_zip

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


def zip_with_data_descriptor(members: list[tuple[str, bytes]], password: str, method: int = 8) -> bytes:
    """A ZipCrypto zip as Info-ZIP's ``zip -P`` writes one: CRC and sizes follow the data in a
    data descriptor (flag bit 3), so the password check byte is the high byte of the DOS time."""
    dos_time, dos_date = (13 << 11) | (47 << 5) | (30 // 2), ((2026 - 1980) << 9) | (11 << 5) | 28
    local_parts, central, offset = [], [], 0
    for name, content in members:
        if method == 8:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = compressor.compress(content) + compressor.flush()
        else:
            data = content
        crc = zlib.crc32(content)
        encrypted = ZipCryptoEncrypter(password.encode()).encrypt(bytes(11) + bytes([dos_time >> 8]) + data)
        raw_name = name.encode()
        head = struct.pack("<HHHHH", 20, 0x809, method, dos_time, dos_date)
        local = b"PK\x03\x04" + head + struct.pack("<IIIHH", 0, 0, 0, len(raw_name), 0) + raw_name
        descriptor = b"PK\x07\x08" + struct.pack("<III", crc, len(encrypted), len(content))
        sizes = struct.pack(
            "<IIIHHHHHII", crc, len(encrypted), len(content), len(raw_name), 0, 0, 0, 0, 0, offset
        )
        central.append(b"PK\x01\x02" + struct.pack("<H", 20) + head + sizes + raw_name)
        local_parts.append(local + encrypted + descriptor)
        offset += len(local_parts[-1])
    directory = b"".join(central)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(directory), offset, 0)
    return b"".join(local_parts) + directory + end


ENCRYPTED_MEMBERS = [("a.log", b"CEF:0|x|y\n" * 3000), ("b.log", b""), ("c.log", bytes(range(256)) * 40)]
ENCRYPTED_ZIPS = {
    "crc-check-byte": make_zip(ENCRYPTED_MEMBERS, password=PASSWORD),
    "time-check-byte": zip_with_data_descriptor(ENCRYPTED_MEMBERS, PASSWORD),
    "stored": zip_with_data_descriptor(ENCRYPTED_MEMBERS, PASSWORD, method=0),
}


def test_the_c_zipcrypto_decrypter_is_installed() -> None:
    """fast-zip-decryption (a dependency) is importable and passes the self-check."""
    assert fast_decrypter() is not None


@pytest.mark.parametrize("kind", list(ENCRYPTED_ZIPS))
def test_encrypted_members_read_through_the_c_decrypter(tmp_path: Path, kind: str) -> None:
    """Deflated and stored ZipCrypto members, with either check byte, read as zipfile reads them."""
    path = write(tmp_path, ENCRYPTED_ZIPS[kind])
    members = list(open_members(path, LABEL, PASSWORD))
    assert all(isinstance(m.stream, ZipCryptoStream) for m in members)
    assert read_all(path, PASSWORD) == ENCRYPTED_MEMBERS
    with zipfile.ZipFile(path) as archive:
        assert [(i.filename, archive.read(i, pwd=PASSWORD.encode())) for i in archive.infolist()] == (
            ENCRYPTED_MEMBERS
        )


@pytest.mark.parametrize("kind", list(ENCRYPTED_ZIPS))
def test_without_the_c_decrypter_zipfile_decrypts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """When fast-zip-decryption is missing, encrypted members still read (through zipfile)."""
    monkeypatch.setattr(archive_module, "fast_decrypter", lambda: None)
    path = write(tmp_path, ENCRYPTED_ZIPS[kind])
    assert not any(isinstance(m.stream, ZipCryptoStream) for m in open_members(path, LABEL, PASSWORD))
    assert read_all(path, PASSWORD) == ENCRYPTED_MEMBERS


def test_c_decrypted_member_reads_in_pieces_of_the_size_asked(tmp_path: Path) -> None:
    """read(n) never returns more than n bytes, and the pieces add up to the member."""
    path = write(tmp_path, ENCRYPTED_ZIPS["time-check-byte"])
    members = open_members(path, LABEL, PASSWORD)  # kept: closing it closes the stream
    member = next(members)
    pieces = list(iter(lambda: member.stream.read(1000), b""))
    members.close()
    assert max(map(len, pieces)) <= 1000
    assert b"".join(pieces) == ENCRYPTED_MEMBERS[0][1]


@pytest.mark.parametrize("fast", [True, False], ids=["c", "zipfile"])
def test_wrong_password_is_the_same_error_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """The C path refuses a wrong password with zipfile's FetchError (check byte of the DOS time)."""
    if not fast:
        monkeypatch.setattr(archive_module, "fast_decrypter", lambda: None)
    data = zip_with_data_descriptor([("a.log", b"CEF:0|x\n")], PASSWORD)
    wrong = next(p for p in (f"wrong{i}" for i in range(1000)) if not _check_byte_matches(data, p))
    with pytest.raises(FetchError) as info:
        read_all(write(tmp_path, data), wrong)
    assert str(info.value) == f"{LABEL} member a.log: wrong zip password (check source.zip_password)"


def _check_byte_matches(data: bytes, password: str) -> bool:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            archive.open("a.log", pwd=password.encode()).close()
        except RuntimeError:
            return False
    return True


@pytest.mark.parametrize("fast", [True, False], ids=["c", "zipfile"])
def test_damaged_encrypted_member_is_a_fetch_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """Damaged ZipCrypto data (bad inflate or bad CRC-32) is a damaged archive, named, either way."""
    if not fast:
        monkeypatch.setattr(archive_module, "fast_decrypter", lambda: None)
    content = "\n".join(cef_event(i) for i in range(300)).encode()
    data = bytearray(make_zip([("a.log", content)], password=PASSWORD))
    data[400:420] = bytes(20)
    path = write(tmp_path, bytes(data))
    with pytest.raises(FetchError) as info:
        list(split_records(open_members(path, LABEL, PASSWORD), LABEL))
    assert str(info.value).startswith(f"{LABEL} member a.log: damaged archive, cannot read it (")
