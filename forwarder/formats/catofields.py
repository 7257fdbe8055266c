"""Cato's events in other formats: the documented field mappings (README, "Encodings").

JSON events (the exporter's JSON, Cato's eventsFeed fields) become CEF or LEEF; CEF events
become LEEF. Fields with a standard key get it (times, addresses, ports, user, action,
protocol, event type and sub-type, severity); every other field keeps its own name as a
custom key (characters a key cannot hold become ``_``; a name that collides with a key
already written gets a ``cato_`` prefix). Nothing is dropped: a value that cannot be
mapped (a time that does not parse) keeps its own name too. Values are text: numbers as
JSON writes them, ``true``/``false``, objects and arrays as compact JSON; null fields are
left out.
"""

from __future__ import annotations

import functools
import operator
import re
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from forwarder.formats import cef, leef
from forwarder.formats.cef import CefEvent
from forwarder.formats.jsonevents import render_json
from forwarder.formats.leef import LeefEvent

VENDOR = "Cato Networks"
PRODUCT = "Cato SASE Platform"
PRODUCT_VERSION = "1.0"
# The JSON fields that hold the event's time, in order of preference (epoch ms or ISO 8601).
TIME_FIELDS = ("time", "creationTime")

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
}
# CEF extension key -> LEEF attribute; other keys keep their names.
CEF_TO_LEEF = {"spt": "srcPort", "dpt": "dstPort", "suser": "usrName", "smac": "srcMAC", "dmac": "dstMAC"}
# LEEF's sev is a number 1-10; CEF's severity words (rev 25: Unknown, Low, Medium, High,
# Very-High) become the top of their band.
SEVERITY_WORDS = {
    "low": "3",
    "medium": "6",
    "high": "8",
    "very-high": "10",
    "very high": "10",
    "critical": "10",
}
# QRadar reads devTime with devTimeFormat (Java SimpleDateFormat).
DEVTIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
_NOT_KEY = re.compile(r"[^A-Za-z0-9_]")


def json_event_time(event: dict[str, Any], now: float | None = None) -> tuple[str, int] | None:
    """(field, epoch ms) of a JSON event's time: ``time``, else ``creationTime``."""
    for name in TIME_FIELDS:
        value = event.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) and 0 <= value < cef.END_MS:  # else no time a header can write
            return name, value
        if isinstance(value, str):
            moment = cef.parse_time(value, now)
            if moment is not None:
                return name, moment
    return None


def value_text(value: Any) -> str:
    """A JSON value as the text a CEF or LEEF value holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return render_json(value) if isinstance(value, (dict, list)) else str(value)


_KEYS: dict[str, str] = {}  # field name -> the key it becomes (events repeat their names)


def _custom(out: dict[str, str], name: str, value: str) -> None:
    """Add a field under its own name (made a valid key), never overwriting another."""
    key = _KEYS.get(name)
    if key is None:
        key = _NOT_KEY.sub("_", name) or "_"
        if len(_KEYS) < 10_000:
            _KEYS[name] = key
    if key in out:
        key = "cato_" + key
    while key in out:
        key += "_"
    out[key] = value


def _put(out: dict[str, str], key: str, value: str) -> None:
    """Add a mapped field; should its key be taken already, as a custom key."""
    if key in out:
        _custom(out, key, value)
    else:
        out[key] = value


def _add_fields(
    out: dict[str, str], event: dict[str, Any], table: dict[str, str], skip: set[str]
) -> dict[str, str]:
    """The fields of *event* not in *skip*: mapped ones under their standard keys first, then
    the rest as custom keys."""
    items = [(name, value) for name, value in event.items() if name not in skip and value is not None]
    for name, value in items:
        if name in table:
            _put(out, table[name], value_text(value))
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
    extension = _add_fields({"rt": str(found[1])} if found else {}, event, JSON_TO_CEF, skip)
    return CefEvent(
        "0", VENDOR, PRODUCT, PRODUCT_VERSION, event_type, name,
        "Unknown" if severity is None else value_text(severity), extension,
    )  # fmt: skip


@functools.lru_cache(maxsize=1024)  # events repeat their severities
def leef_severity(value: str) -> str | None:
    """LEEF sev (1-10) for a CEF/Cato severity: a number as it is (0 as 1, above 10 as 10), a
    word as its band's top."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return str(min(max(int(text), 1), 10)) if len(text.lstrip("0")) <= 2 else "10"
    return SEVERITY_WORDS.get(text.lower())


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
    attributes = _add_fields(attributes, event, JSON_TO_LEEF, skip)
    return LeefEvent(VENDOR, PRODUCT, PRODUCT_VERSION, event_type, attributes)


def leef_from_cef(event: CefEvent, now: float | None = None) -> LeefEvent:
    """A CEF event as LEEF: the header fields kept (class ID as EventID), Name as ``name``,
    Severity as ``sev``, ``rt`` as devTime, the keys of CEF_TO_LEEF renamed."""
    rt = event.extension.get("rt")
    moment = cef.parse_time(rt, now) if rt else None
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
                _put(attributes, CEF_TO_LEEF.get(key, key), value)
    return LeefEvent(event.vendor, event.product, event.device_version, event.signature_id, attributes)


# --- the fast path: a JSON event straight to its CEF or LEEF line ----------------------
# What render(cef_from_json(event)) and render(leef_from_json(event)) write, without
# building the event: the exporter's events of one type have the same fields in the same
# order, so where each field goes (its key, its place) is worked out once per field list
# (a "shape"), by _add_fields itself, as a %-template ("rt\0%s src\0%s ..."); an event only
# fills in its values. The template marks with NUL what is not part of a value (CEF: each
# key's "="; LEEF: the delimiter), so that a value never holding NUL (the count of NULs
# shows it) is escaped by replace() over the whole line, and the marks are put back after.
_CACHED = 1024  # entries kept per cache (the exporter writes a few dozen field lists)
_CACHEABLE = (str, type(None))  # values that heads are cached by (True == 1: ints are left out)
_PLAIN = frozenset((str, int, float))  # values written as str(value) (True is written "true")
_MARK = "\0"


class _Shape(NamedTuple):
    pick: Callable[[list[Any]], tuple[Any, ...]]  # the values placed after the leading ones, in order
    template: str  # "key" + mark + "%s" per value, leading ones first (CEF: joined by " ")
    marks: int  # the marks in the template


def _picker(positions: list[int]) -> Callable[[list[Any]], tuple[Any, ...]]:
    if len(positions) >= 2:
        return operator.itemgetter(*positions)
    if positions:
        only = positions[0]
        return lambda values: (values[only],)
    return lambda values: ()


def _put_cached(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value
    return value


class JsonRenderer:
    """Cato JSON events as CEF (*target* ``cef``) or LEEF (``leef``) lines, exactly as
    ``cef.render(cef_from_json(event))`` and ``leef.render(leef_from_json(event))`` write
    them; ``line(event)`` gives (the line, the event's time in epoch ms or None).

    Measured per event (a 24-field Cato event, ~660 bytes): 3.0 µs to CEF, where the
    general functions take 10 µs.
    """

    def __init__(self, target: str, clock: Callable[[], float] = time.time) -> None:
        self._cef = target == "cef"
        self._table = JSON_TO_CEF if self._cef else JSON_TO_LEEF
        self._clock = clock
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._cef_heads: dict[tuple[Any, ...], str] = {}  # by type, sub-type and severity
        self._leef_heads: dict[str, str] = {}  # by type

    def line(self, event: dict[str, Any], plain: bool = False) -> tuple[str, int | None]:
        """(the line, the event's time); *plain*: every member is known to be a string or
        an integer, and none holds NUL (``jsonevents.read_object``): nothing else to check."""
        moment: int | None = event.get("time")
        name: str | None = "time"
        if not plain or type(moment) is not int or not 0 <= moment < cef.END_MS:  # the general rule
            found = json_event_time(event, self._clock())
            name, moment = found if found else (None, None)
        if self._cef:
            line = self._cef_line(event, name, moment, plain)
        else:
            line = self._leef_line(event, name, moment, plain)
        if line is None:  # a null field (left out): the general path
            if self._cef:
                return cef.render(cef_from_json(event, self._clock())), moment
            return leef.render(leef_from_json(event, self._clock())), moment
        return line, moment

    def _shape(
        self, event: dict[str, Any], key: tuple[Any, ...], leading: list[str], skip: set[str]
    ) -> _Shape:
        """Where each field of *event* goes after the *leading* keys (see _add_fields)."""
        names = list(event)
        out = _add_fields(
            dict.fromkeys(leading, ""), dict(zip(names, range(len(names)), strict=True)), self._table, skip
        )
        keys = list(out)
        if self._cef:
            template = " ".join(f"{k}{_MARK}%s" for k in keys)
        else:
            template = _MARK.join(f"{k}=%s" for k in keys)
        shape = _Shape(_picker([int(out[k]) for k in keys[len(leading) :]]), template, template.count(_MARK))
        return _put_cached(self._shapes, key, shape)  # type: ignore[no-any-return]

    @staticmethod
    def _texts(values: tuple[Any, ...]) -> list[str] | None:
        """The values' texts, None when one is null."""
        if _PLAIN.issuperset(map(type, values)):
            return list(map(str, values))
        return None if None in values else list(map(value_text, values))

    def _cef_line(
        self, event: dict[str, Any], name: str | None, moment: int | None, plain: bool
    ) -> str | None:
        kinds = event.get("event_type"), event.get("event_sub_type"), event.get("severity")
        # Exact keys: text or None, or (plain) text and integers with no True to equal a 1.
        cacheable = plain or all(type(k) in _CACHEABLE for k in kinds)
        head = self._cef_heads.get(kinds) if cacheable else None
        if head is None:
            names = ("event_type", "event_sub_type", "severity")
            head = cef.render(cef_from_json({k: v for k, v in zip(names, kinds, strict=True) if k in event}))
            if cacheable:
                _put_cached(self._cef_heads, kinds, head)
        key = (tuple(event), name)
        shape = self._shapes.get(key)
        if shape is None:
            skip = {"event_type", "event_sub_type", "severity"} | ({name} if name else set())
            shape = self._shape(event, key, ["rt"] if name else [], skip)
        values = ((moment,) if name else ()) + shape.pick(list(event.values()))
        if plain or _PLAIN.issuperset(map(type, values)):
            marked = shape.template % values
            if plain or marked.count(_MARK) == shape.marks:  # no value holds NUL
                if "\\" in marked or "=" in marked or "\r" in marked or "\n" in marked:
                    marked = cef.escape_value(marked)
                return head + marked.replace(_MARK, "=")
        texts = self._texts(values)
        if texts is None:
            return None
        return head + shape.template.replace(_MARK, "=") % tuple(map(cef.escape_value, texts))

    def _leef_line(
        self, event: dict[str, Any], name: str | None, moment: int | None, plain: bool
    ) -> str | None:
        severity = event.get("severity")
        sev = None if severity is None else leef_severity(value_text(severity))
        event_type = event.get("event_type")
        head = self._leef_heads.get(event_type) if type(event_type) is str else None
        if head is None:
            head = leef.header(VENDOR, PRODUCT, PRODUCT_VERSION, value_text(event_type or "Event"))
            if type(event_type) is str:
                _put_cached(self._leef_heads, event_type, head)
        key = (tuple(event), name, sev is not None)
        shape = self._shapes.get(key)
        if shape is None:
            skip = {"event_type"} | ({name} if name else set()) | ({"severity"} if sev is not None else set())
            leading = (["devTime", "devTimeFormat"] if name else []) + (["sev"] if sev is not None else [])
            shape = self._shape(event, key, leading, skip)
        lead: tuple[str, ...] = () if moment is None else (devtime(moment), DEVTIME_FORMAT)
        values = (lead if sev is None else (*lead, sev)) + shape.pick(list(event.values()))
        if plain or _PLAIN.issuperset(map(type, values)):
            return _leef_fill(head, shape, values, plain)
        texts = self._texts(values)
        return None if texts is None else _leef_fill(head, shape, tuple(texts))


def _leef_fill(head: str, shape: _Shape, values: tuple[Any, ...], plain: bool = False) -> str:
    """The LEEF line: *head* (up to the delimiter field), then *values* (each written as
    str(value); *plain*: none holds NUL) in *shape*'s template, escaped as leef.render does."""
    marked = shape.template % values
    if plain or marked.count(_MARK) == shape.marks:  # no value holds NUL
        tabs = "\t" in marked
        if not (tabs or "\\" in marked or "\r" in marked or "\n" in marked):
            return f"{head}x09|" + marked.replace(_MARK, "\t")
        # Keys hold none of the delimiters: the line shows which ones the values hold.
        delimiter, written = leef.choose_delimiter({}, marked) if tabs else ("\t", "x09")
        return f"{head}{written}|" + leef.escape_values(marked, delimiter).replace(_MARK, delimiter)
    texts = list(map(str, values))
    delimiter, written = leef.choose_delimiter({}, "".join(texts))
    escaped = tuple(leef.escape_value(t, delimiter) for t in texts)
    return f"{head}{written}|" + shape.template.replace(_MARK, delimiter) % escaped


class _CefKeys(NamedTuple):
    """What a CEF extension's key list says, worked out once per list."""

    rt: int  # where rt's value is (-1: none)
    end: int  # and end's
    repeated: bool  # a key given twice (the first wins: the general path)
    shapes: dict[tuple[bool, bool, bool], _Shape]  # by (devTime, sev, severity kept)


class CefLeefRenderer:
    """CEF lines as LEEF lines, exactly as ``leef.render(leef_from_cef(cef.parse(text)))``
    writes them: ``line(text)`` gives (the line, the CEF Severity field, the event's time
    as ``cef.event_time`` finds it), or raises CefError as ``cef.parse`` does.

    The LEEF attributes of a CEF key list (its names after CEF_TO_LEEF, their order, the
    leading devTime, sev, name and severity) are worked out once per list, by the same
    _put that leef_from_cef uses, as a template that each event's values fill in.
    Measured per event (the benchmark's CEF events, escapes in every one): 10 µs, where
    parsing, converting and rendering an event took 15; parsing the extension (its split
    and unescaping, ~4 µs) is most of what is left.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[tuple[str, ...], _CefKeys] = {}

    def line(self, text: str) -> tuple[str, str, int | None]:
        header, extension = cef.header_fields(text)
        keys, values = cef.extension_items(extension)
        names = tuple(keys)
        known = self._keys.get(names)
        if known is None:
            where = {key: i for i, key in reversed(list(enumerate(keys)))}  # the first of each
            known = _put_cached(self._keys, names, _CefKeys(where.get("rt", -1), where.get("end", -1),
                                                             len(where) < len(keys), {}))  # fmt: skip
        severity = header[6]
        if known.repeated:  # the general path
            event = cef.CefEvent(*header, cef.parse_extension(extension))
            return (
                leef.render(leef_from_cef(event, self._clock())),
                severity,
                cef.event_time(event, self._clock()),
            )
        rt = values[known.rt] if known.rt >= 0 else ""
        moment = cef.parse_time(rt, self._clock()) if rt else None
        sev = leef_severity(severity)
        kept = sev is None and bool(severity)  # a Severity word LEEF has no number for
        flags = (moment is not None, sev is not None, kept)
        shape = known.shapes.get(flags) or self._shape(known, keys, flags)
        lead: tuple[str, ...] = (devtime(moment), DEVTIME_FORMAT) if moment is not None else ()
        if sev is not None:
            lead += (sev,)
        lead += (header[5], severity) if kept else (header[5],)
        head = leef.header(header[1], header[2], header[3], header[4])
        line = _leef_fill(head, shape, lead + shape.pick(values))
        if moment is None and known.end >= 0 and values[known.end]:  # cef.event_time: rt, else end
            moment = cef.parse_time(values[known.end], self._clock())
        return line, severity, moment

    @staticmethod
    def _shape(known: _CefKeys, keys: list[str], flags: tuple[bool, bool, bool]) -> _Shape:
        timed, sev, kept = flags
        leading = (["devTime", "devTimeFormat"] if timed else []) + (["sev"] if sev else [])
        leading += ["name", "severity"] if kept else ["name"]
        attributes = dict.fromkeys(leading, "")
        for i, key in enumerate(keys):
            if key != "rt" or not timed:
                _put(attributes, CEF_TO_LEEF.get(key, key), str(i))
        placed = list(attributes)
        template = _MARK.join(f"{name}=%s" for name in placed)
        shape = _Shape(
            _picker([int(attributes[k]) for k in placed[len(leading) :]]), template, template.count(_MARK)
        )
        known.shapes[flags] = shape
        return shape
