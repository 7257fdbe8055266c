"""Open a downloaded object as a sequence of member streams: zip, gzip or text.

What an object holds is decided in one place, ``container_of``, from its name and first
bytes: a zip or gzip signature decides (so a ``.gz`` the client already unpacked is read as
text, and a ``.zip`` that is really gzip still reads); an object named ``.zip`` without a zip
signature, or of no known container and not looking like text, is a bad file
(BadFileError), never read as records. Zip members are read in name order, with the
configured password for ZipCrypto members; everything is streamed, so memory stays bounded
whatever the size of the object or its members.

ZipCrypto in the standard library is pure Python: it decrypts about 2.6 MB of compressed
data a second (23 MB/s of CEF text). When the ``fast-zip-decryption`` package's C
decrypter is importable (a dependency), an encrypted stored or deflated member is read by
``ZipCryptoStream`` instead: decrypted in C, inflated by zlib, 400-450 MB/s of text
(measured on 1M Cato-like events; the whole forwarder then moves them in 4.4 s instead of
30 s). Its absence only costs speed: zipfile reads the member then.
"""

from __future__ import annotations

import codecs
import functools
import gzip
import importlib
import io
import os
import struct
import typing
import zipfile
import zlib
from collections.abc import Callable, Iterator
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


# zip's general purpose flags and compression methods (APPNOTE.TXT 4.4.4, 4.4.5).
_FLAG_ENCRYPTED = 0x01
_FLAG_DATA_DESCRIPTOR = 0x08
_FLAG_STRONG_ENCRYPTION = 0x40
_STORED, _DEFLATED = 0, 8
# local file header: signature, versions, flags, method, time, date, crc, sizes, name and
# extra field lengths (APPNOTE.TXT 4.3.7); 30 bytes.
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
# Compressed bytes read and decrypted at a time. Reading 1M events (56 MB zipped, 450 MB
# of text) took 0.92-0.95 s of CPU with 64 KiB, 1.05-1.3 s with 256 KiB or 1 MiB (zlib
# copies the input it has not used yet on every call that fills the caller's read size).
ENCRYPTED_READ_BYTES = 1 << 16
# ZipCrypto of b"ZipCrypto self-check" with the password b"forwarder", to check the C
# decrypter against before trusting it.
_SELF_CHECK = (
    b"forwarder",
    b"ZipCrypto self-check",
    b"\x8a\xb7\x8dH\x90\xaa\xe4\xc5>\xe5\x9b\xd0\x0e\x9b\x9f\xf5\xff:cf",
)


@functools.cache
def fast_decrypter() -> Callable[[bytes], Any] | None:
    """The C ZipCrypto decrypter of fast-zip-decryption (a factory: password -> decrypt),
    or None when it is not installed or does not decrypt correctly."""
    try:
        module = importlib.import_module("_zipdecrypter")  # the C part of fast-zip-decryption
        factory: Callable[[bytes], Any] = module.StandardZipDecrypter
        password, plain, cipher = _SELF_CHECK
        if factory(password).decrypt_bytes(cipher) == plain:
            return factory
    except Exception:  # missing, or an incompatible build: zipfile's own decrypter will do
        pass
    return None


class ZipCryptoStream(io.RawIOBase):
    """An encrypted (ZipCrypto) zip member, stored or deflated, read through a C decrypter.

    Does what ``zipfile.ZipExtFile`` does for such a member (password check byte, inflate,
    CRC-32 check at the end, the same exceptions) without its per-byte Python decryption.
    """

    def __init__(self, path: Path, info: zipfile.ZipInfo, password: bytes, factory: Callable[[bytes], Any]):
        super().__init__()
        self._name = info.filename
        self._expected_crc = info.CRC
        self._crc = 0
        self._inflater = zlib.decompressobj(-15) if info.compress_type == _DEFLATED else None
        self._tail = b""  # decrypted input not yet inflated (stored: not yet returned)
        self._file = open(path, "rb")
        try:
            self._file.seek(info.header_offset)
            header = self._file.read(_LOCAL_HEADER.size)
            if len(header) != _LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
                raise zipfile.BadZipFile("Bad magic number for file header")
            name_length, extra_length = _LOCAL_HEADER.unpack(header)[-2:]
            self._file.seek(name_length + extra_length, os.SEEK_CUR)
            # decrypt_bytes, not the decrypter's __call__: in fast-zip-decryption 3.0.0 a call
            # keeps a reference to its argument, so every compressed byte read stayed in memory.
            self._decrypt = factory(password).decrypt_bytes
            # 12 bytes of encryption header; the last one is the check byte: the high byte
            # of the CRC, or of the DOS time when sizes and CRC follow in a data descriptor.
            check = self._decrypt(self._file.read(12))
            if len(check) != 12:
                raise EOFError("zip member cut short")
            if info.flag_bits & _FLAG_DATA_DESCRIPTOR:
                hour, minute = info.date_time[3:5]
                expected = ((hour << 11 | minute << 5) >> 8) & 0xFF
            else:
                expected = info.CRC >> 24
            if check[11] != expected:
                raise RuntimeError(f"Bad password for file {info.orig_filename!r}")
            self._left = info.compress_size - 12
        except BaseException:
            self._file.close()
            raise

    @staticmethod
    def suits(info: zipfile.ZipInfo) -> bool:
        """True for the members this class reads: ZipCrypto, stored or deflated."""
        flags = info.flag_bits
        return (
            bool(flags & _FLAG_ENCRYPTED)
            and not flags & _FLAG_STRONG_ENCRYPTION
            and (info.compress_type in (_STORED, _DEFLATED))
        )

    def readable(self) -> bool:
        return True

    def _input(self) -> bytes:
        """The next decrypted compressed bytes; b"" at the end of the member."""
        if self._tail:
            data, self._tail = self._tail, b""
            return data
        if self._left <= 0:
            return b""
        raw = self._file.read(min(ENCRYPTED_READ_BYTES, self._left))
        if not raw:
            raise EOFError("zip member cut short")
        self._left -= len(raw)
        return bytes(self._decrypt(raw))  # bytes already: no copy

    def read(self, size: int | None = -1) -> bytes:
        """Up to *size* bytes of the member (all that is left when size is negative)."""
        if size is None or size < 0:
            return self.readall()
        while size:
            data = self._input()
            if self._inflater is None:
                out, self._tail = data[:size], data[size:]
            elif data:
                out = self._inflater.decompress(data, size)
                self._tail = self._inflater.unconsumed_tail
            else:  # all input taken; zlib may still hold output that did not fit last time
                out = self._inflater.flush()
            if out:
                self._crc = zlib.crc32(out, self._crc)
                return out
            if not data:
                self._finish()
                return b""
        return b""

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _finish(self) -> None:
        if self._inflater is not None and not self._inflater.eof:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        if self._crc != self._expected_crc:
            raise zipfile.BadZipFile(f"Bad CRC-32 for file {self._name!r}")

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


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
