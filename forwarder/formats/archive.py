"""Open a downloaded object as a sequence of member streams: zip, gzip or text.

What an object holds is decided in one place, ``container_of``, from its name and first
bytes: a zip or gzip signature decides (so a ``.gz`` the client already unpacked is read as
text, and a ``.zip`` that is really gzip still reads); an object named ``.zip`` without a zip
signature, or of no known container and not looking like text, is a bad file
(BadFileError), never read as records. Zip members are read in name order, with the
configured password for ZipCrypto members; everything is streamed, so memory stays bounded
whatever the size of the object or its members.

Password-protected (ZipCrypto) members are decrypted in C where the package for it is
there (``formats.zipcrypto``), by zipfile otherwise.
"""

from __future__ import annotations

import codecs
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
from forwarder.formats.zipcrypto import ZipCryptoStream, fast_decrypter

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


# How much of an object's start decides whether it is text: one read, and plenty of lines.
TEXT_CHECK_BYTES = 1 << 16
# Text may hold a few bytes that are not UTF-8 (parser.invalid_utf8 deals with them), not
# more than 1 in 8 of its first block. Random, compressed or encrypted bytes measured 43%
# invalid (and 4 KiB of them almost surely hold a NUL); Latin-1 text is invalid only in its
# accented letters (14% in a German sentence written with one in every word).
MAX_INVALID_SHARE = 1 / 8
# How many of an object's first bytes a bad file's reason shows, in hex.
HEAD_SHOWN_BYTES = 8


def container_of(name: str, head: bytes) -> str:
    """What the object *name* whose first bytes are *head* (TEXT_CHECK_BYTES of them, or all
    of a shorter object) holds: "zip", "gzip" or "text"; BadFileError naming *name* when it
    is none of them.

    A signature decides over the name: zip (``50 4b 03 04``, or ``50 4b 05 06`` for an empty
    zip), gzip (``1f 8b``). Without one, a name ending ``.zip`` is a bad file, and anything
    else (``.gz`` included: some clients unpack it and keep the name) is text only when it
    looks like text (see ``looks_like_text``).
    """
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if name.lower().endswith(".zip"):
        raise BadFileError(f"{name}: not a zip archive ({_starts_with(head)})")
    if not looks_like_text(head):
        raise BadFileError(f"{name}: not a zip, gzip or text object ({_starts_with(head)})")
    return "text"


def looks_like_text(head: bytes) -> bool:
    """True when *head*, an object's first bytes, holds no NUL and at most MAX_INVALID_SHARE
    bytes that are not UTF-8; a character cut by the end of the block does not count."""
    if b"\0" in head:
        return False
    decoder = codecs.getincrementaldecoder("utf-8")("ignore")
    valid = len(decoder.decode(head, final=False).encode("utf-8"))
    cut = len(decoder.getstate()[0])  # the start of a character the block ends inside
    return len(head) - valid - cut <= len(head) * MAX_INVALID_SHARE


def _starts_with(head: bytes) -> str:
    if not head:
        return "empty object"
    more = " ..." if len(head) > HEAD_SHOWN_BYTES else ""
    return f"starts with {head[:HEAD_SHOWN_BYTES].hex(' ')}{more}"


def _open_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, password: str) -> IO[bytes]:
    factory = fast_decrypter() if password and ZipCryptoStream.suits(info) else None
    if factory is None:
        return archive.open(info)
    return typing.cast(IO[bytes], ZipCryptoStream(path, info, password.encode("utf-8"), factory))


@contextmanager
def _zip_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, path: Path, password: str
) -> Iterator[IO[bytes]]:
    try:
        stream = _open_member(archive, info, path, password)
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
    """Yield each member of the object stored at *path*, in order; *label* (``s3://bucket/key``)
    names it in errors, and its name counts in deciding what it holds (``container_of``).

    The caller reads each member's stream before asking for the next one. An object that
    is not what it should be (see ``container_of``) or a zip without a readable central
    directory raises BadFileError before any member; errors from a damaged archive surface
    as FetchError naming *label* and the member.
    """
    with open(path, "rb") as handle:
        kind = container_of(label, handle.read(TEXT_CHECK_BYTES))
    if kind == "text":
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
        raise BadFileError(f"{label}: not a readable zip file ({exc})") from exc
    with archive:
        if password:
            archive.setpassword(password.encode("utf-8"))
        members = sorted((i for i in archive.infolist() if not i.is_dir()), key=lambda i: i.filename)
        for info in members:
            with _zip_member(archive, info, f"{label} member {info.filename}", path, password) as stream:
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
