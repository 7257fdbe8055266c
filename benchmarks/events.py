"""Cato-like events for the benchmarks: deterministic, varied, CEF of about 450 bytes each.

The header and the extension carry what real Log Exporter events carry (rule, user, site,
application, URL, device, OS), with CEF escapes (``\\|`` in a header field, ``\\=``,
``\\\\`` and ``\\n`` in the extension) and non-ASCII text, so that the severity lookup and
the line splitting meet what they meet in production. Varied addresses, ports and ids keep
the compression ratio near that of real exporter files (about 9:1 with ``zip -6``).

``SHAPES`` are the data shapes ``run.py`` measures, each changing one thing:

- ``cef-local``: ``rt`` as Cato writes it (``Mon May 18 14:49:40 UTC 2020``), the events of
  a file within 30 s of event time (0.6 ms apart: 50,000 events a file), ASCII only;
- ``cef-spread``: the same, every event at a different second of the year;
- ``cef-utf8``: ``cef-local`` with half the events holding non-ASCII text (user and site);
- ``json``: Cato's JSON events (epoch ms ``time``, ~60% non-ASCII).

``cef_lines`` (epoch ms ``rt`` 37 ms apart, ~60% non-ASCII) are the events measured before
the shapes, kept for ``encode.py``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator

_TEMPLATE = (
    "CEF:0|Cato Networks|Cato SASE Platform|1.0|{sub}|{name}|{sev}|rt={rt} cs2Label=Rule cs2={rule} "
    "suser={user} src={src} dst={dst} spt={spt} dpt={dpt} proto={proto} act={act} "
    "cs3Label=Site Name cs3={site} cs4Label=Application cs4={app} "
    "cs5Label=URL cs5=https://{host}/api/v{v}/items?id\\={i} deviceExternalId={dev} "
    "cs6Label=OS Type cs6={os} msg=event {i} path\\\\share a\\=b line1\\nline2"
)
_SUBTYPES = ("Internet Firewall", "Security", "WAN Firewall", "Connectivity")
_NAMES = ("Allow rule", "Block rule \\| default", "Allow rule", "Inspect TLS", "Allow rule")
_USERS = ("alice@example.com", "jörg.müller@example.de", "tanaka@example.jp", "bob@example.com")
_SITES = ("Zürich HQ", "東京 branch", "NYC Office", "Paris Nord")
_APPS = ("Office365", "Slack", "Zoom", "GitHub", "Salesforce", "Google Drive")
_OSES = ("Windows", "macOS", "Linux", "iOS", "Android")
_PORTS = (443, 443, 443, 80, 53, 22, 8443)


_ASCII_USERS = ("alice@example.com", "joerg.mueller@example.de", "tanaka@example.jp", "bob@example.com")
_ASCII_SITES = ("Zurich HQ", "Tokyo branch", "NYC Office", "Paris Nord")
# 2026-01-01T00:00:00Z, and the seconds of a year visited in a scattered order: 7919 is
# prime to 365 * 86400, so i * 7919 mod that is a different second for every i.
_YEAR_START_MS = 1767225600000
_YEAR_SECONDS = 365 * 86400


def java_date(epoch_ms: int) -> str:
    """Java's Date.toString() in UTC, as Cato writes rt: ``Mon May 18 14:49:40 UTC 2020``."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch_ms // 1000))


def cef_lines(first: int, count: int, seed: int = 1, shape: str = "") -> Iterator[str]:
    """*count* events numbered from *first*, each a line ending in LF; same seed, same text.
    *shape*: one of SHAPES' CEF ones, or "" for the events measured before the shapes."""
    rng = random.Random(seed * 1_000_003 + first)
    rand = rng.randrange
    for i in range(first, first + count):
        if shape == "cef-spread":
            rt = java_date(_YEAR_START_MS + (i * 7919 % _YEAR_SECONDS) * 1000)
        elif shape:
            rt = java_date(_YEAR_START_MS + i * 3 // 5)  # 0.6 ms apart
        else:
            rt = str(1764314712000 + i * 37)
        non_ascii = i % 2 == 0 if shape == "cef-utf8" else not shape
        yield (
            _TEMPLATE.format(
                sub=_SUBTYPES[i % 4],
                name=_NAMES[i % 5],
                sev=i % 11,
                rt=rt,
                rule=f"rule-{rand(500)}",
                user=(_USERS if non_ascii else _ASCII_USERS)[1 if shape == "cef-utf8" else i % 4],
                src=f"10.{rand(256)}.{rand(256)}.{rand(256)}",
                dst=f"{rand(1, 224)}.{rand(256)}.{rand(256)}.{rand(256)}",
                spt=rand(1024, 65535),
                dpt=_PORTS[rand(7)],
                proto="UDP" if rand(4) == 0 else "TCP",
                act="Block" if i % 3 == 0 else "Allow",
                site=(_SITES if non_ascii else _ASCII_SITES)[1 if shape == "cef-utf8" else i % 4],
                app=_APPS[rand(6)],
                host=f"svc{rand(100)}.example.com",
                v=rand(5),
                i=i,
                dev=f"{rand(1 << 48):012x}",
                os=_OSES[rand(5)],
            )
            + "\n"
        )


# The same events as the exporter's JSON (Cato's event field names): ports and counts as
# numbers, a URL holding "=", non-ASCII text; the field list differs by event sub-type, as
# the exporter's does. About 620 bytes and 24 fields each.
_JSON_EXTRA = {
    "Internet Firewall": ("rule_name", "application_name", "categories"),
    "Security": ("threat_name", "threat_type", "signature_id"),
    "WAN Firewall": ("rule_name", "dest_site_name", "application_name"),
    "Connectivity": ("tunnel_type", "link_type", "disconnect_reason"),
}


def json_lines(first: int, count: int, seed: int = 1) -> Iterator[str]:
    """*count* JSON events numbered from *first*, each a line ending in LF; same seed, same text."""
    rng = random.Random(seed * 1_000_003 + first)
    rand = rng.randrange
    for i in range(first, first + count):
        sub = _SUBTYPES[i % 4]
        event = {
            "event_type": "Security" if sub != "Connectivity" else "Connectivity",
            "event_sub_type": sub,
            "time": 1764314712000 + i * 37,
            "account_id": 4242,
            "internalId": f"{rand(1 << 64):016x}",
            "src_ip": f"10.{rand(256)}.{rand(256)}.{rand(256)}",
            "dest_ip": f"{rand(1, 224)}.{rand(256)}.{rand(256)}.{rand(256)}",
            "src_port": rand(1024, 65535),
            "dest_port": _PORTS[rand(7)],
            "ip_protocol": "UDP" if rand(4) == 0 else "TCP",
            "action": "Block" if i % 3 == 0 else "Allow",
            "user_name": _USERS[i % 4],
            "src_site_name": _SITES[i % 4],
            "src_country": "Switzerland",
            "dest_country": "United States",
            "os_type": _OSES[rand(5)],
            "pop_name": "Zurich",
            "traffic_direction": "OUTBOUND",
            "device_name": f"LAPTOP-{rand(10000):04d}",
            "url": f"https://svc{rand(100)}.example.com/api/v{rand(5)}/items?id={i}",
            "event_count": 1,
        }
        for n, name in enumerate(_JSON_EXTRA[sub]):
            event[name] = f"{_APPS[rand(6)]} {n}" if n < 2 else str(rand(1000))
        yield json.dumps(event, ensure_ascii=False) + "\n"


def push_lines(first: int, count: int, seed: int = 1) -> Iterator[str]:
    """The same events as Cato's Events Integration writes them (NDJSON, typed values): compact
    separators, time in epoch ms and time_str, event_id, booleans and arrays. About 700 bytes."""
    for i, line in enumerate(json_lines(first, count, seed), first):
        event = json.loads(line)
        event["event_id"] = event.pop("internalId")
        event["time_str"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["time"] // 1000))
        event["static_host"] = i % 5 == 0
        event["app_stack"] = [_APPS[i % 6], "HTTPS"]
        event["categories"] = ["Business Systems", "Cloud Services"][: 1 + i % 2]
        yield json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"


SHAPES = ("cef-local", "cef-spread", "cef-utf8", "json")


def shape_lines(shape: str, first: int, count: int) -> Iterator[str]:
    """The events of *shape* (one of SHAPES) numbered from *first*."""
    if shape == "json":
        return json_lines(first, count)
    return cef_lines(first, count, shape=shape)
