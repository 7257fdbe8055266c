"""Cato's events in other formats: the documented field mappings (README, "Encodings").

JSON events (the exporter's JSON, Cato's eventsFeed fields, the Events Integration's typed
NDJSON) become CEF or LEEF; CEF events become LEEF. Fields with a standard key get it
(times, addresses, ports, user, action, protocol, event type and sub-type, severity, count,
files, translated addresses); every other field keeps its own name as a custom key
(characters a key cannot hold become ``_``; a name that collides with a key already
written gets a ``cato_`` prefix). Nothing is dropped: a value that cannot be mapped (a time
that does not parse) keeps its own name too. Values are text: numbers as JSON writes them,
``true``/``false``, arrays joined with ``,`` (as Cato's API writes its lists; an element
that is an object or array as compact JSON), objects as compact JSON; null fields are left
out.
"""

from __future__ import annotations

import functools
import re
import time
from typing import Any

from forwarder.formats.cache import remember
from forwarder.formats.cef import CefEvent
from forwarder.formats.jsonevents import render_json
from forwarder.formats.leef import LeefEvent
from forwarder.formats.severity import leef_severity
from forwarder.formats.times import END_MS, parse_time

VENDOR = "Cato Networks"
PRODUCT = "Cato SASE Platform"
PRODUCT_VERSION = "1.0"
# The JSON fields that hold the event's time, in order of preference (epoch ms or ISO 8601):
# the push feed writes time (epoch ms) and time_str (ISO 8601), the exporter creationTime.
TIME_FIELDS = ("time", "time_str", "creationTime")

# Cato JSON field -> CEF extension key (rev 25's key names).
JSON_TO_CEF = {
    "src_ip": "src",
    "dest_ip": "dst",
    "src_port": "spt",
    "dest_port": "dpt",
    "ip_protocol": "proto",
    "user_name": "suser",
    "action": "act",
    "src_mac": "smac",
    "dest_mac": "dmac",
    "domain_name": "dhost",
    "url": "request",
    "event_message": "msg",
    "event_count": "cnt",  # > 1 when Cato merged repeats: CEF's baseEventCount
    "event_id": "externalId",
    "file_name": "fname",
    "file_size": "fsize",
    "file_hash": "fileHash",
    "http_request_method": "requestMethod",
    "user_agent": "requestClientApplication",
    "translated_client_ip": "sourceTranslatedAddress",
    "translated_server_ip": "destinationTranslatedAddress",
}
# Cato JSON field -> LEEF attribute (QRadar's predefined keys where there is one).
JSON_TO_LEEF = {
    "src_ip": "src",
    "dest_ip": "dst",
    "src_port": "srcPort",
    "dest_port": "dstPort",
    "ip_protocol": "proto",
    "user_name": "usrName",
    "action": "action",
    "src_mac": "srcMAC",
    "dest_mac": "dstMAC",
    "domain_name": "domain",
    "url": "url",
    "event_sub_type": "cat",
    "translated_client_ip": "srcPostNAT",
    "translated_server_ip": "dstPostNAT",
}
# CEF extension key -> LEEF attribute; other keys keep their names.
CEF_TO_LEEF = {"spt": "srcPort", "dpt": "dstPort", "suser": "usrName", "smac": "srcMAC", "dmac": "dstMAC"}
# QRadar reads devTime with devTimeFormat (Java SimpleDateFormat).
DEVTIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
_NOT_KEY = re.compile(r"[^A-Za-z0-9_]")


def json_event_time(event: dict[str, Any], now: float | None = None) -> tuple[str, int] | None:
    """(field, epoch ms) of a JSON event's time: ``time``, else ``time_str``, else ``creationTime``."""
    for name in TIME_FIELDS:
        value = event.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) and 0 <= value < END_MS:  # else no time a header can write
            return name, value
        if isinstance(value, str):
            moment = parse_time(value, now)
            if moment is not None:
                return name, moment
    return None


def value_text(value: Any) -> str:
    """A JSON value as the text a CEF or LEEF value holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):  # app_stack, categories: "Office365,Microsoft"
        return ",".join(item if isinstance(item, str) else render_json(item) for item in value)
    return render_json(value) if isinstance(value, dict) else str(value)


_KEYS: dict[str, str] = {}  # field name -> the key it becomes (events repeat their names)


def _custom(out: dict[str, str], name: str, value: str) -> None:
    """Add a field under its own name (made a valid key), never overwriting another."""
    key = _KEYS.get(name)
    if key is None:
        key = _NOT_KEY.sub("_", name) or "_"
        remember(_KEYS, name, key, 10_000)
    if key in out:
        key = "cato_" + key
    while key in out:
        key += "_"
    out[key] = value


def put(out: dict[str, str], key: str, value: str) -> None:
    """Add a mapped field; should its key be taken already, as a custom key."""
    if key in out:
        _custom(out, key, value)
    else:
        out[key] = value


def add_fields(
    out: dict[str, str], event: dict[str, Any], table: dict[str, str], skip: set[str]
) -> dict[str, str]:
    """The fields of *event* not in *skip*: mapped ones under their standard keys first, then
    the rest as custom keys."""
    items = [(name, value) for name, value in event.items() if name not in skip and value is not None]
    for name, value in items:
        if name in table:
            put(out, table[name], value_text(value))
    for name, value in items:
        if name not in table:
            _custom(out, name, value_text(value))
    return out


def cef_from_json(event: dict[str, Any], now: float | None = None) -> CefEvent:
    """A Cato JSON event as CEF: class ID ``event_type``, Name ``event_sub_type``, rt its time."""
    event_type = value_text(event.get("event_type") or "Event")
    name = value_text(event.get("event_sub_type") or event_type)
    severity = event.get("severity")
    found = json_event_time(event, now)
    skip = {"event_type", "event_sub_type", "severity"} | ({found[0]} if found else set())
    extension = add_fields({"rt": str(found[1])} if found else {}, event, JSON_TO_CEF, skip)
    return CefEvent(
        "0", VENDOR, PRODUCT, PRODUCT_VERSION, event_type, name,
        "Unknown" if severity is None else value_text(severity), extension,
    )  # fmt: skip


def devtime(epoch_ms: int) -> str:
    """LEEF devTime in DEVTIME_FORMAT: ``2020-05-18T14:49:40.000+0000``."""
    seconds, millis = divmod(epoch_ms, 1000)
    return _devtime_second(seconds) + _DEVTIME_TAILS[millis]


_DEVTIME_TAILS = [f".{ms:03d}+0000" for ms in range(1000)]


@functools.lru_cache(maxsize=4096)  # the events of a file span seconds: 1 µs made once a second
def _devtime_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _time_attributes(epoch_ms: int | None) -> dict[str, str]:
    return {} if epoch_ms is None else {"devTime": devtime(epoch_ms), "devTimeFormat": DEVTIME_FORMAT}


def leef_from_json(event: dict[str, Any], now: float | None = None) -> LeefEvent:
    """A Cato JSON event as LEEF: EventID ``event_type``, cat ``event_sub_type``, devTime its time."""
    event_type = value_text(event.get("event_type") or "Event")
    found = json_event_time(event, now)
    attributes = _time_attributes(found[1] if found else None)
    skip = {"event_type"} | ({found[0]} if found else set())
    severity = event.get("severity")
    sev = leef_severity(value_text(severity)) if severity is not None else None
    if sev is not None:
        attributes["sev"] = sev
        skip.add("severity")  # else it stays, as a custom key
    attributes = add_fields(attributes, event, JSON_TO_LEEF, skip)
    return LeefEvent(VENDOR, PRODUCT, PRODUCT_VERSION, event_type, attributes)


def leef_from_cef(event: CefEvent, now: float | None = None) -> LeefEvent:
    """A CEF event as LEEF: the header fields kept (class ID as EventID), Name as ``name``,
    Severity as ``sev``, ``rt`` as devTime, the keys of CEF_TO_LEEF renamed."""
    rt = event.extension.get("rt")
    moment = parse_time(rt, now) if rt else None
    attributes = _time_attributes(moment)
    sev = leef_severity(event.severity)
    if sev is not None:
        attributes["sev"] = sev
    attributes["name"] = event.name
    if sev is None and event.severity:
        attributes["severity"] = event.severity
    renamed = {CEF_TO_LEEF.get(key, key): value for key, value in event.extension.items()}
    if moment is not None:
        del renamed["rt"]
    if len(renamed) == len(event.extension) - (moment is not None) and not renamed.keys() & attributes.keys():
        attributes.update(renamed)  # no name taken twice: the common case, in C
    else:
        for key, value in event.extension.items():
            if key != "rt" or moment is None:
                put(attributes, CEF_TO_LEEF.get(key, key), value)
    return LeefEvent(event.vendor, event.product, event.device_version, event.signature_id, attributes)
