"""The fast path of ``formats.catofields``: a JSON event (or a CEF line) straight to its CEF or
LEEF line, exactly as the general functions write it, from a template made once per field list.

What render(cef_from_json(event)) and render(leef_from_json(event)) write, without
building the event: the exporter's events of one type have the same fields in the same
order, so where each field goes (its key, its place) is worked out once per field list
(a "shape"), by add_fields itself, as a %-template ("rt\0%s src\0%s ..."); an event only
fills in its values. The template marks with NUL what is not part of a value (CEF: each
key's "="; LEEF: the delimiter), so that a value never holding NUL (the count of NULs
shows it) is escaped by replace() over the whole line, and the marks are put back after.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from forwarder.formats import cef, leef
from forwarder.formats.cache import remember
from forwarder.formats.catofields import (
    CEF_TO_LEEF,
    DEVTIME_FORMAT,
    JSON_TO_CEF,
    JSON_TO_LEEF,
    PRODUCT,
    PRODUCT_VERSION,
    VENDOR,
    add_fields,
    cef_from_json,
    devtime,
    json_event_time,
    leef_from_cef,
    leef_from_json,
    put,
    value_text,
)
from forwarder.formats.severity import leef_severity
from forwarder.formats.times import END_MS, event_time, parse_time

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
        if not plain or type(moment) is not int or not 0 <= moment < END_MS:  # the general rule
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
        """Where each field of *event* goes after the *leading* keys (see add_fields)."""
        names = list(event)
        out = add_fields(
            dict.fromkeys(leading, ""), dict(zip(names, range(len(names)), strict=True)), self._table, skip
        )
        keys = list(out)
        if self._cef:
            template = " ".join(f"{k}{_MARK}%s" for k in keys)
        else:
            template = _MARK.join(f"{k}=%s" for k in keys)
        shape = _Shape(_picker([int(out[k]) for k in keys[len(leading) :]]), template, template.count(_MARK))
        return remember(self._shapes, key, shape, _CACHED)

    @staticmethod
    def _texts(values: tuple[Any, ...]) -> tuple[str, ...] | None:
        """The texts of values not all plain (arrays, booleans), None when one is null."""
        return None if None in values else tuple(v if type(v) is str else value_text(v) for v in values)

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
                remember(self._cef_heads, kinds, head, _CACHED)
        key = (tuple(event), name)
        shape = self._shapes.get(key)
        if shape is None:
            skip = {"event_type", "event_sub_type", "severity"} | ({name} if name else set())
            shape = self._shape(event, key, ["rt"] if name else [], skip)
        values = ((moment,) if name else ()) + shape.pick(list(event.values()))
        if plain or _PLAIN.issuperset(map(type, values)):
            return _cef_fill(head, shape, values, plain)
        texts = self._texts(values)  # typed values (arrays, booleans) as text
        return None if texts is None else _cef_fill(head, shape, texts)

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
                remember(self._leef_heads, event_type, head, _CACHED)
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
        return None if texts is None else _leef_fill(head, shape, texts)


def _cef_fill(head: str, shape: _Shape, values: tuple[Any, ...], plain: bool = False) -> str:
    """The CEF line: *head*, then *values* (each written as str(value); *plain*: none holds
    NUL) in *shape*'s template, escaped over the whole line at once (value by value when a
    value holds the NUL that marks the template's ``=``)."""
    marked = shape.template % values
    if plain or marked.count(_MARK) == shape.marks:  # no value holds NUL
        if "\\" in marked or "=" in marked or "\r" in marked or "\n" in marked:
            marked = cef.escape_value(marked)
        return head + marked.replace(_MARK, "=")
    return head + shape.template.replace(_MARK, "=") % tuple(cef.escape_value(str(v)) for v in values)


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
    as ``event_time`` finds it), or raises CefError as ``cef.parse`` does.

    The LEEF attributes of a CEF key list (its names after CEF_TO_LEEF, their order, the
    leading devTime, sev, name and severity) are worked out once per list, by the same
    put that leef_from_cef uses, as a template that each event's values fill in.
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
            keys_of = _CefKeys(where.get("rt", -1), where.get("end", -1), len(where) < len(keys), {})
            known = remember(self._keys, names, keys_of, _CACHED)
        severity = header[6]
        if known.repeated:  # the general path
            event = cef.CefEvent(*header, cef.parse_extension(extension))
            return (
                leef.render(leef_from_cef(event, self._clock())),
                severity,
                event_time(event, self._clock()),
            )
        rt = values[known.rt] if known.rt >= 0 else ""
        moment = parse_time(rt, self._clock()) if rt else None
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
        if moment is None and known.end >= 0 and values[known.end]:  # event_time: rt, else end
            moment = parse_time(values[known.end], self._clock())
        return line, severity, moment

    @staticmethod
    def _shape(known: _CefKeys, keys: list[str], flags: tuple[bool, bool, bool]) -> _Shape:
        timed, sev, kept = flags
        leading = (["devTime", "devTimeFormat"] if timed else []) + (["sev"] if sev else [])
        leading += ["name", "severity"] if kept else ["name"]
        attributes = dict.fromkeys(leading, "")
        for i, key in enumerate(keys):
            if key != "rt" or not timed:
                put(attributes, CEF_TO_LEEF.get(key, key), str(i))
        placed = list(attributes)
        template = _MARK.join(f"{name}=%s" for name in placed)
        shape = _Shape(
            _picker([int(attributes[k]) for k in placed[len(leading) :]]), template, template.count(_MARK)
        )
        known.shapes[flags] = shape
        return shape
