"""Open a downloaded object as a sequence of member streams: zip, gzip or plain.

The kind is told by the file's first bytes, not its name, so a ``.zip`` that is really
gzip (or plain text) still reads. Zip members are read in name order, with the configured
password for ZipCrypto members; everything is streamed, so memory stays bounded whatever
the size of the object or its members.
"""

from __future__ import annotations

import gzip
import io
import typing
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from forwarder.errors import BadFileError, FetchError

ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"

# What a damaged archive raises while being read: zipfile's own errors, a wrong password
# (RuntimeError from zipfile), a deflate stream cut short (zlib.error, EOFError) or a bad gzip.
ARCHIVE_ERRORS = (zipfile.BadZipFile, RuntimeError, zlib.error, EOFError, gzip.BadGzipFile)


@dataclass(frozen=True)
class Member:
    """One file inside an object ("" for a plain or gzip object) and its byte stream."""

    name: str
    stream: IO[bytes]


def archive_kind(path: Path) -> str:
    """Return "zip", "gzip" or "plain" from the file's magic bytes."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return "plain"


@contextmanager
def _zip_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Iterator[IO[bytes]]:
    try:
        stream = archive.open(info)
    except RuntimeError as exc:
        # zipfile says "File ... is encrypted, password required" or "Bad password for file".
        reason = "wrong zip password" if "Bad password" in str(exc) else "password-protected member"
        hint = "check source.zip_password" if "Bad password" in str(exc) else "set source.zip_password"
        raise FetchError(f"{label}: {reason} ({hint})") from exc
    except ARCHIVE_ERRORS as exc:  # e.g. a damaged local header: "Bad magic number for file header"
        raise FetchError(f"{label}: damaged archive, cannot read it ({exc})") from exc
    with stream:
        yield stream


def open_members(path: Path, label: str, password: str = "") -> Iterator[Member]:
    """Yield each member of the object stored at *path*, in order; *label* names it in errors.

    The caller reads each member's stream before asking for the next one. Errors from a
    damaged archive surface as FetchError naming *label* and the member.
    """
    kind = archive_kind(path)
    if kind == "plain":
        with open(path, "rb") as handle:
            yield Member("", handle)
        return
    if kind == "gzip":
        with gzip.open(path, "rb") as stream:
            yield Member("", typing.cast(IO[bytes], stream))
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FetchError(f"{label}: not a readable zip file ({exc})") from exc
    with archive:
        if password:
            archive.setpassword(password.encode("utf-8"))
        members = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
        for info in members:
            with _zip_member(archive, info, f"{label} member {info.filename}") as stream:
                yield Member(info.filename, stream)


class _LimitedStream(io.RawIOBase):
    """A member stream that fails once more than *limit* bytes came out of it (zip bombs)."""

    def __init__(self, stream: IO[bytes], limit: int, label: str) -> None:
        self._stream, self._left, self._limit, self._label = stream, limit, limit, label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise BadFileError(
                f"{self._label}: decompresses to more than source.max_member_bytes ({self._limit} bytes); "
                "a zip bomb, or raise the limit"
            )
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def limit_members(members: Iterator[Member], limit: int, label: str) -> Iterator[Member]:
    """*members* of object *label*, each stream failing with BadFileError past *limit* bytes."""
    for member in members:
        where = f"{label} member {member.name}" if member.name else label
        yield Member(member.name, typing.cast(IO[bytes], _LimitedStream(member.stream, limit, where)))
