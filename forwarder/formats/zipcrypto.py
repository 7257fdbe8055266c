"""ZipCrypto (traditional PKWARE encryption) members read through a C decrypter.

ZipCrypto in the standard library is pure Python: it decrypts about 2.6 MB of compressed
data a second (23 MB/s of CEF text). When the ``fast-zip-decryption`` package's C
decrypter is importable (a dependency), an encrypted stored or deflated member is read by
``ZipCryptoStream`` instead: decrypted in C, inflated by zlib, 400-450 MB/s of text
(measured on 1M Cato-like events; the whole forwarder then moves them in 4.4 s instead of
30 s). Its absence only costs speed: zipfile reads the member then (``formats.archive``).
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
