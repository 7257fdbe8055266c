"""Cato-style sample events and exporter files, for the demo, the tests and the benchmark.

``make_zip`` writes a zip whose members may be encrypted with legacy ZipCrypto (the
"traditional PKWARE encryption" of APPNOTE.TXT 6.1), as the Log Exporter's
password-protected files are; the standard library can read those but not write them.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zlib
from collections.abc import Iterable

_CEF_TEMPLATE = (
    "CEF:0|Cato Networks|Cato SASE Platform|1.0|{sub}|{name}|{sev}|rt={rt} "
    "src=10.{a}.{b}.{c} spt={spt} dst=93.184.{b}.{c} dpt=443 proto=TCP act={act} "
    "suser={user} cs2Label=site_name cs2={site} msg={msg}"
)
_USERS = ("alice@example.com", "jörg.müller@example.de", "tanaka@example.jp", "bob@example.com")
_SITES = ("Zürich HQ", "東京 branch", "NYC\\=Office", "Paris|Nord")


def cef_event(i: int) -> str:
    """A Cato-like CEF event with escaped characters and non-ASCII text, numbered *i*."""
    return _CEF_TEMPLATE.format(
        sub="Internet Firewall" if i % 2 else "Security",
        name="Block rule \\| default" if i % 5 == 0 else "Allow rule",
        sev=(i % 11),
        rt=1764314712000 + i * 1000,
        a=i % 250, b=(i // 250) % 250, c=i % 200,
        spt=1024 + i % 60000,
        act="Block" if i % 3 == 0 else "Allow",
        user=_USERS[i % len(_USERS)],
        site=_SITES[i % len(_SITES)],
        msg=f"event {i} path\\\\share a\\=b line1\\nline2",
    )  # fmt: skip


def json_event(i: int) -> str:
    """A Cato-like JSON event (one line), numbered *i*."""
    return json.dumps(
        {
            "event_type": "Security",
            "event_sub_type": "Internet Firewall",
            "time": 1764314712000 + i * 1000,
            "src_ip": f"10.0.{i % 250}.{i % 200}",
            "dest_ip": "93.184.216.34",
            "action": "Block" if i % 3 == 0 else "Allow",
            "user_name": _USERS[i % len(_USERS)],
            "site_name": _SITES[i % len(_SITES)],
            "rule": f'rule "{i}" \\ =|',
            "seq": i,
        },
        ensure_ascii=False,
    )


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


class ZipCryptoEncrypter:
    """Traditional PKWARE encryption (APPNOTE.TXT 6.1): three keys updated per plain byte."""

    def __init__(self, password: bytes) -> None:
        self._keys = [0x12345678, 0x23456789, 0x34567890]
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        k0, k1, k2 = self._keys
        k0 = _CRC_TABLE[(k0 ^ byte) & 0xFF] ^ (k0 >> 8)
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = _CRC_TABLE[(k2 ^ (k1 >> 24)) & 0xFF] ^ (k2 >> 8)
        self._keys = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt *data*, continuing the key stream."""
        out = bytearray(len(data))
        for i, byte in enumerate(data):
            temp = (self._keys[2] | 2) & 0xFFFF
            out[i] = byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF)
            self._update(byte)
        return bytes(out)


def make_zip(members: Iterable[tuple[str, bytes]], password: str = "") -> bytes:
    """A deflated zip of *members* (name, content), ZipCrypto-encrypted when *password* is set."""
    local_parts: list[bytes] = []
    central: list[bytes] = []
    offset = 0
    t = time.localtime()
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    dos_date = ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    count = 0
    for name, content in members:
        count += 1
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = compressor.compress(content) + compressor.flush()
        crc = zlib.crc32(content)
        flags = 0x800  # names are UTF-8
        if password:
            flags |= 0x1
            encrypter = ZipCryptoEncrypter(password.encode("utf-8"))
            header = os.urandom(11) + bytes([crc >> 24])  # check byte: high byte of the CRC
            data = encrypter.encrypt(header + data)
        raw_name = name.encode("utf-8")
        common = struct.pack(
            "<HHHHHIIIH",
            20,
            flags,
            8,
            dos_time,
            dos_date,
            crc,
            len(data),
            len(content),
            len(raw_name),
        )
        local = b"PK\x03\x04" + common + struct.pack("<H", 0) + raw_name
        central.append(
            b"PK\x01\x02" + struct.pack("<H", 20) + common
            + struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset) + raw_name
        )  # fmt: skip
        local_parts.append(local + data)
        offset += len(local) + len(data)
    directory = b"".join(central)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, count, count, len(directory), offset, 0)
    return b"".join(local_parts) + directory + end


def push_event(i: int) -> str:
    """A Cato Events Integration event (one NDJSON line, typed values), numbered *i*."""
    return json.dumps(
        {
            "event_type": "Security",
            "event_sub_type": "Internet Firewall",
            "time": 1763478148991 + i * 1000,
            "time_str": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1763478148 + i)),
            "account_id": 20000232,
            "src_ip": f"10.0.{i % 250}.{i % 200}",
            "dest_port": 443,
            "action": "Block" if i % 3 == 0 else "Allow",
            "event_count": 1 + i % 3,
            "static_host": i % 2 == 0,
            "app_stack": ["Office365", "Microsoft"],
            "site_name": _SITES[i % len(_SITES)],
            "seq": i,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def push_key(prefix: str, i: int) -> str:
    """A UUID-like key for push object *i*: keys of later objects may sort first."""
    text = hashlib.sha1(f"push-{i}".encode()).hexdigest()  # a name, not a secret
    return f"{prefix}{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:32]}.gz"


def exporter_key(prefix: str, sequence: int) -> str:
    """The exporter's object name for file *sequence*: ``<prefix>CATO<20 digits>.zip``."""
    return f"{prefix}CATO{sequence:020d}.zip"
