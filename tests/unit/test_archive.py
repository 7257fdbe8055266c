"""Unit tests for forwarder.formats.archive: zip, gzip or plain objects opened as member streams."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from forwarder.errors import BadFileError, FetchError
from forwarder.formats import archive as archive_module
from forwarder.formats.archive import TEXT_CHECK_BYTES, container_of, looks_like_text, open_members
from forwarder.formats.records import split_records
from forwarder.formats.zipcrypto import ZipCryptoStream, fast_decrypter
from forwarder.samples import ZipCryptoEncrypter, cef_event, make_zip

LABEL = "s3://cato-logs/CATO00000000000000000001.zip"
LABEL_GZ = "s3://cato-logs/CATO00000000000000000001.gz"  # the name Cato's push integration writes
PASSWORD = "s3cret-Zürich"


def read_all(path: Path, password: str = "", label: str = LABEL) -> list[tuple[str, bytes]]:
    """(name, content) of every member of the object at *path* (called *label*), read in turn."""
    return [(m.name, m.stream.read()) for m in open_members(path, label, password)]


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
    ("name", "head", "kind"),
    [
        ("CATO1.zip", make_zip([("a.log", b"x\n")]), "zip"),
        ("CATO1.zip", make_zip([]), "zip"),
        ("CATO1.gz", make_zip([("a.log", b"x\n")]), "zip"),
        ("CATO1.zip", gzip.compress(b"CEF:0|x\n"), "gzip"),
        ("CATO1.gz", gzip.compress(b"CEF:0|x\n"), "gzip"),
        ("CATO1.log", gzip.compress(b"CEF:0|x\n"), "gzip"),
        ("CATO1.gz", b"CEF:0|x\n", "text"),
        ("CATO1.log", b'{"a": 1}\n', "text"),
        ("CATO1", b"", "text"),
        ("CATO1.ZIP.txt", "CEF:0|Zürich 東京\n".encode(), "text"),
    ],
    ids=["zip", "empty-zip", "zip-named-gz", "gzip-named-zip", "gzip", "gzip-named-log", "text-named-gz",
         "text", "empty-text", "utf8-text"],
)  # fmt: skip
def test_container_is_told_by_signature_first(name: str, head: bytes, kind: str) -> None:
    """A zip or gzip signature decides whatever the name; other objects that look like text are text."""
    assert container_of(f"s3://b/{name}", head) == kind


@pytest.mark.parametrize(
    ("name", "head", "reason"),
    [
        ("CATO1.zip", bytes.fromhex("8b3f00a1c2d3e4f5a6b7"),
         "not a zip archive (starts with 8b 3f 00 a1 c2 d3 e4 f5 ...)"),
        ("CATO1.zip", b"CEF:0|x\n", "not a zip archive (starts with 43 45 46 3a 30 7c 78 0a)"),
        ("CATO1.Zip", b"PK", "not a zip archive (starts with 50 4b)"),
        ("CATO1.zip", b"", "not a zip archive (empty object)"),
        ("CATO1.gz", b"\x1f\x8a abc", "not a zip, gzip or text object (starts with 1f 8a 20 61 62 63)"),
        ("CATO1.log", b"CEF:0|x\x00|y\n",
         "not a zip, gzip or text object (starts with 43 45 46 3a 30 7c 78 00 ...)"),
    ],
    ids=["random-zip", "text-named-zip", "short-zip-uppercase", "empty-zip", "not-gzip", "nul"],
)  # fmt: skip
def test_an_object_of_no_container_it_should_have_is_a_bad_file(name: str, head: bytes, reason: str) -> None:
    """A .zip without a zip signature, or bytes of no container that are not text: BadFileError
    naming the object, what it is not, and its first bytes in hex."""
    with pytest.raises(BadFileError) as info:
        container_of(f"s3://b/{name}", head)
    assert str(info.value) == f"s3://b/{name}: {reason}"


@pytest.mark.parametrize(
    ("head", "text"),
    [
        (b"CEF:0|plain ascii\r\n" * 100, True),
        ("CEF:0|x|msg=Zürich\n".encode() * 100, True),
        # a block that ends inside a character (é is c3 a9): the cut does not count
        (b"a" * 9 + b"\xc3", True),
        (b"a" * 8 + b"\xc3\xa9" * 4 + "東".encode()[:2], True),
        # invalid bytes up to 1 in 8 are text (parser.invalid_utf8 deals with them), more are not
        ((b"a" * 7 + b"\xff") * 16, True),
        ((b"a" * 6 + b"\xff\xff") * 16, False),
        (b"\xff", False),
        # "Grüße" in Latin-1: one invalid byte in five letters
        ("Grüße aus Zürich, Straße fünf; ".encode("latin-1") * 50, False),
        ("Events for Zürich ".encode("latin-1") * 50, True),
        (b"CEF:0|x\x00", False),
        (b"", True),
    ],
)
def test_looks_like_text_tolerates_a_cut_character_and_a_few_invalid_bytes(head: bytes, text: bool) -> None:
    """Text holds no NUL and at most 1 invalid UTF-8 byte in 8; a character cut at the block's end is fine."""
    assert looks_like_text(head) is text


def test_random_bytes_are_not_text_and_a_text_check_reads_one_block(tmp_path: Path) -> None:
    """4 KiB of os.urandom at any name is a bad file; only the first TEXT_CHECK_BYTES are looked at."""
    with pytest.raises(BadFileError, match="not a zip, gzip or text object"):
        read_all(write(tmp_path, os.urandom(4096)), label=LABEL_GZ)
    with pytest.raises(BadFileError, match="not a zip archive"):
        read_all(write(tmp_path, os.urandom(4096)), label=LABEL)
    late_nul = b"CEF:0|x\n" * (TEXT_CHECK_BYTES // 8) + b"\x00"
    assert read_all(write(tmp_path, late_nul), label=LABEL_GZ) == [("", late_nul)]


def test_gzip_object_is_one_unnamed_member(tmp_path: Path) -> None:
    """A gzip object (even named .zip) reads as one member named "" holding the inflated text."""
    path = write(tmp_path, gzip.compress(b"CEF:0|a\nCEF:0|b\n"))
    assert read_all(path) == [("", b"CEF:0|a\nCEF:0|b\n")]


def test_plain_object_is_one_unnamed_member(tmp_path: Path) -> None:
    """A plain-text object (named .gz: unpacked by a client that kept the name) reads as one member
    named "" holding the bytes as they are."""
    path = write(tmp_path, b'{"a": 1}\r\n{"b": 2}\r\n')
    assert read_all(path, label=LABEL_GZ) == [("", b'{"a": 1}\r\n{"b": 2}\r\n')]


@pytest.mark.parametrize(
    "data",
    [b"CEF:0|a\n\nCEF:0|b\n", gzip.compress(b"CEF:0|a\n\nCEF:0|b\n")],
    ids=["plain", "gzip"],
)
def test_plain_and_gzip_objects_split_into_records(tmp_path: Path, data: bytes) -> None:
    """Records of a plain or gzip object carry member "" and physical line numbers."""
    path = write(tmp_path, data)
    records = list(split_records(open_members(path, LABEL_GZ), LABEL_GZ))
    assert [(r.ordinal, r.member, r.line, r.text) for r in records] == [
        (0, "", 1, b"CEF:0|a"),
        (1, "", 3, b"CEF:0|b"),
    ]


def test_empty_zip_has_no_members(tmp_path: Path) -> None:
    """A zip with no entries gives no members (and so no records)."""
    assert read_all(write(tmp_path, make_zip([]))) == []


@pytest.mark.parametrize("keep", [0.5, 0.9], ids=["half", "most"])
def test_truncated_zip_is_a_bad_file(tmp_path: Path, keep: float) -> None:
    """A zip cut short (no central directory) is a BadFileError naming the object, before any member."""
    data = make_zip([("a.log", b"CEF:0|x\n" * 500), ("b.log", b"CEF:0|y\n" * 500)])
    path = write(tmp_path, data[: int(len(data) * keep)])
    with pytest.raises(BadFileError) as info:
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


@pytest.mark.parametrize(
    "data",
    [gzip.compress(b"CEF:0|x\n" * 10_000)[:-100], b"\x1f\x8b" + bytes(range(256)) * 4],
    ids=["cut-short", "garbage-after-signature"],
)
def test_damaged_gzip_is_a_bad_file_when_read_as_records(tmp_path: Path, data: bytes) -> None:
    """A gzip stream cut short, or not gzip past its signature, is a bad file: a damaged archive
    naming the object."""
    path = write(tmp_path, data)
    with pytest.raises(BadFileError) as info:
        list(split_records(open_members(path, LABEL_GZ), LABEL_GZ))
    assert str(info.value).startswith(f"{LABEL_GZ}: damaged archive, cannot read it (")


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
