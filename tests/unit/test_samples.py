"""Unit tests for forwarder.samples: sample events and exporter-like zips."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from forwarder.formats.records import classify
from forwarder.formats.severity import cef_severity
from forwarder.samples import cef_event, exporter_key, json_event, make_zip

MEMBERS = [
    ("CATO00000000000000000001-a.log", "\n".join(cef_event(i) for i in range(20)).encode() + b"\n"),
    ("b/Zürich.log", "\n".join(json_event(i) for i in range(20)).encode() + b"\n"),
    ("empty.log", b""),
]


@pytest.mark.parametrize("password", ["", "pw", "pässwörd with spaces"])
def test_make_zip_is_readable_by_zipfile(password: str) -> None:
    """zipfile reads every member back byte for byte (with the password when one is set)."""
    data = make_zip(MEMBERS, password=password)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if password:
            archive.setpassword(password.encode())
        assert archive.testzip() is None  # every CRC matches
        infos = archive.infolist()
        assert [i.filename for i in infos] == [name for name, _ in MEMBERS]
        assert all(bool(i.flag_bits & 0x1) == bool(password) for i in infos)
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
        for name, content in MEMBERS:
            assert archive.read(name) == content


def test_encrypted_zip_needs_its_password() -> None:
    """Without the password zipfile refuses an encrypted member."""
    data = make_zip(MEMBERS[:1], password="pw")
    with zipfile.ZipFile(io.BytesIO(data)) as archive, pytest.raises(RuntimeError):
        archive.read(MEMBERS[0][0])


@pytest.mark.parametrize("i", range(0, 23))
def test_cef_event_is_one_line_of_cef_with_its_severity(i: int) -> None:
    """cef_event(i) is a one-line CEF record whose Severity field is i % 11."""
    text = cef_event(i).encode()
    assert b"\n" not in text
    assert classify(text, "auto") == ("cef", "")
    expected = {0: 6, 1: 6, 2: 6, 3: 6, 4: 4, 5: 4, 6: 4, 7: 3, 8: 3, 9: 2, 10: 2}[i % 11]
    assert cef_severity(text) == expected


@pytest.mark.parametrize("i", [0, 1, 7, 10_000])
def test_json_event_is_one_line_of_json(i: int) -> None:
    """json_event(i) is a one-line JSON object numbered i."""
    text = json_event(i)
    assert "\n" not in text
    assert json.loads(text)["seq"] == i
    assert classify(text.encode(), "auto") == ("json", "")


@pytest.mark.parametrize(
    ("prefix", "sequence", "key"),
    [
        ("", 1, "CATO00000000000000000001.zip"),
        ("KEY/", 9999, "KEY/CATO00000000000000009999.zip"),
        ("KEY/", 10000, "KEY/CATO00000000000000010000.zip"),
    ],
)
def test_exporter_key(prefix: str, sequence: int, key: str) -> None:
    """exporter_key gives the exporter's name: prefix, CATO, 20 zero-padded digits, .zip."""
    assert exporter_key(prefix, sequence) == key
