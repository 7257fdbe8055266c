"""A local stand-in for Cato's GraphQL API (``eventsFeed``, ``auditFeed``) over HTTPS.

:class:`CatoApiServer` serves ``POST /api/v1/graphql2`` on 127.0.0.1 (a port of its own), with a
certificate minted per run by ``trustme`` (:func:`tests.support.certs.mint_server_certs`). It
implements what Cato documents and what its own scripts and other vendors' clients show, errors
included; ``tests/support/CATO_API_NOTES.md`` lists each behaviour with its source, and marks the
ones nothing public settles (those are constructor arguments).

In short:

- ``x-api-key`` selects a key; each key may read some accounts (``keys=`` / :meth:`add_key`).
- ``eventsFeed(accountIDs, marker, filters)``: a queue per account (:meth:`add_events`), kept
  ``retention_secs`` (7 days); pages of at most ``page_size`` (3000) records; an empty request
  marker starts from now; a call that finds nothing new answers ``marker: ""``; a marker unused
  for ``marker_ttl_secs`` (3 days) has expired.
- ``auditFeed(accountIDs, timeFrame, marker, filters)``: records per account
  (:meth:`add_audit_records`), pages of ``audit_page_size`` (1000), ``hasMore``, time markers
  ``"<ms>_"`` whose boundary is inclusive.
- Errors inside HTTP 200: a wrong key, the rate limit (per query per account over a sliding
  minute, shared by all keys), an invalid or expired marker, an account the key may not read
  (``errorString``), GraphQL syntax and validation errors.
- Faults on demand: :meth:`fail_next` (HTTP 5xx, TCP reset, a truncated body, a GraphQL error,
  ``eventsFeed: null``, the rate-limit answer, a slow answer).
- Time comes from :attr:`clock` (a :class:`CatoClock`), which tests move with ``advance()``.
- What was asked is kept: :attr:`requests`, :attr:`calls`, :attr:`markers_issued`,
  :attr:`gaps`, :attr:`last_request_headers`.

Example::

    with CatoApiServer() as api:                      # key DEFAULT_API_KEY reads DEFAULT_ACCOUNT
        status, body = api.query(EVENTS_FEED_QUERY, {"accountIDs": [DEFAULT_ACCOUNT], "marker": ""})
        marker = body["data"]["eventsFeed"]["marker"]  # the baseline: "from now"
        api.add_events(DEFAULT_ACCOUNT, [{"event_type": "Security", "src_ip": "10.0.0.1"}])
        status, body = api.query(EVENTS_FEED_QUERY, {"accountIDs": [DEFAULT_ACCOUNT], "marker": marker})

A client under test is given ``api.url`` and trusts ``api.ca_file``.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import gzip
import http.client
import json
import math
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tests.support.certs import mint_server_certs

GRAPHQL_PATH = "/api/v1/graphql2"
DEFAULT_API_KEY = "cato-test-api-key"
DEFAULT_ACCOUNT = "12345"

DAY = 86400.0
EVENTS_PAGE_SIZE = 3000
AUDIT_PAGE_SIZE = 1000
RETENTION_SECS = 7 * DAY
MARKER_TTL_SECS = 3 * DAY
RATE_LIMITS = {"eventsFeed": 100, "auditFeed": 5}
DEFAULT_RATE_LIMIT = 120

PERMISSION_DENIED = "permission denied"
RATE_LIMIT_PREFIX = "rate limit for operation: "
MARKER_EXPIRED = "marker expired"
INVALID_MARKER = "invalid marker"

FAULT_KINDS = (
    "http_500", "http_502", "http_503", "reset", "truncate",
    "graphql_error", "null_data", "rate_limit", "slow",
)

EVENTS_FEED_QUERY = """
query eventsFeed($accountIDs: [ID!], $marker: String, $filters: [EventFeedFieldFilterInput!]) {
  eventsFeed(accountIDs: $accountIDs, marker: $marker, filters: $filters) {
    marker
    fetchedCount
    accounts { id errorString records { time fieldsMap } }
  }
}
"""

AUDIT_FEED_QUERY = """
query auditFeed($accountIDs: [ID!], $timeFrame: TimeFrame!, $marker: String) {
  auditFeed(accountIDs: $accountIDs, timeFrame: $timeFrame, marker: $marker) {
    from to marker fetchedCount hasMore
    accounts { id records { time admin { id name type } object { id name type } fieldsMap } }
  }
}
"""


# --------------------------------------------------------------------------------------------
# Time


class CatoClock:
    """The server's notion of "now" (epoch seconds): real time plus an offset tests can move.

    ``advance(secs)`` jumps forward (rate-limit windows, retention, marker expiry all follow).
    ``frozen=True`` stops it between jumps, for tests that count exactly.
    """

    def __init__(self, start: float | None = None, *, frozen: bool = False) -> None:
        self._base = time.time() if start is None else float(start)
        self._mono = time.monotonic()
        self._offset = 0.0
        self._frozen = frozen
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            running = 0.0 if self._frozen else time.monotonic() - self._mono
            return self._base + running + self._offset

    def advance(self, secs: float) -> float:
        """Move the clock ``secs`` seconds forward; returns the new now."""
        with self._lock:
            self._offset += float(secs)
        return self.now()

    def freeze(self) -> None:
        now = self.now()
        with self._lock:
            self._base, self._offset, self._frozen = now, 0.0, True

    def unfreeze(self) -> None:
        now = self.now()
        with self._lock:
            self._base, self._offset, self._frozen = now, 0.0, False
            self._mono = time.monotonic()


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(epoch: float) -> int:
    return int(round(epoch * 1000))


_DURATION = re.compile(
    r"^P(?:(?P<y>\d+(?:\.\d+)?)Y)?(?:(?P<mo>\d+(?:\.\d+)?)M)?(?:(?P<w>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_UTC_RANGE = re.compile(r"^utc\.(?P<pre>[^{]*)\{(?P<a>[^{}]+)--(?P<b>[^{}]+)\}$")


def parse_time_frame(value: str, now: float) -> tuple[float, float]:
    """``(from, to)`` epoch seconds for a Cato ``TimeFrame`` (``last.P1D``, ``utc.2020-02-{...}``)."""
    if value.startswith("last."):
        match = _DURATION.match(value[5:])
        if not match or value[5:] in ("P", "PT") or value[5:].endswith("T"):
            raise ValueError(value)
        parts = {k: float(v) for k, v in match.groupdict().items() if v}
        secs = (
            parts.get("y", 0) * 365 * DAY + parts.get("mo", 0) * 30 * DAY + parts.get("w", 0) * 7 * DAY
            + parts.get("d", 0) * DAY + parts.get("h", 0) * 3600 + parts.get("mi", 0) * 60 + parts.get("s", 0)
        )
        return now - secs, now
    match = _UTC_RANGE.match(value)
    if not match:
        raise ValueError(value)
    ends = []
    for part in (match["a"], match["b"]):
        text = match["pre"] + part
        for fmt in ("%Y-%m-%d/%H:%M:%S", "%Y/%m-%d/%H:%M:%S"):
            try:
                ends.append(calendar.timegm(time.strptime(text, fmt)))
                break
            except ValueError:
                continue
        else:
            raise ValueError(value)
    if ends[1] < ends[0]:
        raise ValueError(value)
    return float(ends[0]), float(ends[1])


# --------------------------------------------------------------------------------------------
# GraphQL: a lexer and parser for executable documents, and the slice of Cato's schema served.


class GraphQLError(Exception):
    """An error reported in the response's ``errors`` (parse, validation or a resolver's)."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        code: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.extensions = dict(extensions or {})
        if code:
            self.extensions.setdefault("code", code)

    def as_dict(self, path: Sequence[str] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.line is not None:
            out["locations"] = [{"line": self.line, "column": self.column}]
        if path is not None:
            out["path"] = list(path)
        if self.extensions:
            out["extensions"] = self.extensions
        return out


def _syntax(message: str, line: int, column: int) -> GraphQLError:
    return GraphQLError(f"Syntax Error: {message}", line=line, column=column, code="GRAPHQL_PARSE_FAILED")


def _invalid(message: str, line: int | None = None, column: int | None = None) -> GraphQLError:
    return GraphQLError(message, line=line, column=column, code="GRAPHQL_VALIDATION_FAILED")


@dataclass(frozen=True)
class _Tok:
    kind: str  # punct, name, int, float, string, eof
    value: str
    line: int
    col: int


_PUNCT = set("!$&()[]{}:=@|")
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _block_string(raw: str) -> str:
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines[1:] if ln.strip(" \t")]
    common = min(indents) if indents else 0
    lines = [lines[0]] + [ln[common:] for ln in lines[1:]]
    while lines and not lines[0].strip(" \t"):
        lines.pop(0)
    while lines and not lines[-1].strip(" \t"):
        lines.pop()
    return "\n".join(lines)


def _lex(text: str) -> Iterator[_Tok]:
    i, line, line_start, n = 0, 1, 0, len(text)
    while True:
        while i < n:
            ch = text[i]
            if ch in " \t,\ufeff":
                i += 1
            elif ch in "\r\n":
                if ch == "\r" and text.startswith("\r\n", i):
                    i += 1
                i += 1
                line, line_start = line + 1, i
            elif ch == "#":
                while i < n and text[i] not in "\r\n":
                    i += 1
            else:
                break
        col = i - line_start + 1
        if i >= n:
            yield _Tok("eof", "", line, col)
            return
        ch = text[i]
        if ch in _PUNCT:
            yield _Tok("punct", ch, line, col)
            i += 1
        elif text.startswith("...", i):
            yield _Tok("punct", "...", line, col)
            i += 3
        elif ch == "_" or ch.isalpha():
            match = _NAME.match(text, i)
            assert match is not None
            yield _Tok("name", match.group(), line, col)
            i = match.end()
        elif ch == "-" or ch.isdigit():
            match = _NUMBER.match(text, i)
            if not match:
                raise _syntax(f"Invalid number, unexpected character {ch!r}.", line, col)
            kind = "float" if match.group(1) or match.group(2) else "int"
            yield _Tok(kind, match.group(), line, col)
            i = match.end()
        elif text.startswith('"""', i):
            end = i + 3
            while True:
                end = text.find('"""', end)
                if end < 0:
                    raise _syntax("Unterminated string.", line, col)
                if text[end - 1] == "\\":
                    end += 3
                    continue
                break
            raw = text[i + 3:end].replace('\\"""', '"""')
            yield _Tok("string", _block_string(raw), line, col)
            newlines = text.count("\n", i, end)
            if newlines:
                line += newlines
                line_start = text.rfind("\n", i, end) + 1
            i = end + 3
        elif ch == '"':
            j, out = i + 1, []
            while True:
                if j >= n or text[j] in "\r\n":
                    raise _syntax("Unterminated string.", line, col)
                c = text[j]
                if c == '"':
                    break
                if c == "\\":
                    esc = text[j + 1:j + 2]
                    if esc == "u":
                        digits = text[j + 2:j + 6]
                        if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
                            raise _syntax("Invalid Unicode escape sequence.", line, j - line_start + 1)
                        out.append(chr(int(digits, 16)))
                        j += 6
                        continue
                    if esc not in _ESCAPES:
                        raise _syntax(f"Invalid character escape sequence: \\{esc}.", line,
                                      j - line_start + 1)
                    out.append(_ESCAPES[esc])
                    j += 2
                    continue
                out.append(c)
                j += 1
            yield _Tok("string", "".join(out), line, col)
            i = j + 1
        else:
            raise _syntax(f"Unexpected character {ch!r}.", line, col)


@dataclass(frozen=True)
class _Var:
    name: str


class _Enum(str):
    """An enum literal (a bare name in a value position)."""


@dataclass
class _Field:
    alias: str | None
    name: str
    args: dict[str, Any]
    directives: list[tuple[str, dict[str, Any]]]
    selections: list[Any] | None
    line: int
    col: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class _Inline:
    type_cond: str | None
    directives: list[tuple[str, dict[str, Any]]]
    selections: list[Any]
    line: int
    col: int


@dataclass
class _Spread:
    name: str
    directives: list[tuple[str, dict[str, Any]]]
    line: int
    col: int


@dataclass
class _Operation:
    kind: str
    name: str | None
    var_defs: list[tuple[str, str, Any, bool]]  # name, type, default, has_default
    selections: list[Any]


@dataclass
class _Fragment:
    name: str
    type_cond: str
    selections: list[Any]
    line: int
    col: int


@dataclass
class _Document:
    operations: list[_Operation]
    fragments: dict[str, _Fragment]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = list(_lex(text))
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def at(self, value: str, kind: str = "punct") -> bool:
        tok = self.peek()
        return tok.kind == kind and tok.value == value

    def expect(self, value: str) -> _Tok:
        tok = self.take()
        if tok.kind != "punct" or tok.value != value:
            raise _syntax(f'Expected "{value}", found {self._describe(tok)}.', tok.line, tok.col)
        return tok

    def name(self) -> _Tok:
        tok = self.take()
        if tok.kind != "name":
            raise _syntax(f"Expected Name, found {self._describe(tok)}.", tok.line, tok.col)
        return tok

    @staticmethod
    def _describe(tok: _Tok) -> str:
        if tok.kind == "eof":
            return "<EOF>"
        if tok.kind == "string":
            return f'String "{tok.value}"'
        return f'"{tok.value}"' if tok.kind == "punct" else f'{tok.kind.capitalize()} "{tok.value}"'

    def document(self) -> _Document:
        ops: list[_Operation] = []
        frags: dict[str, _Fragment] = {}
        if self.peek().kind == "eof":
            tok = self.peek()
            raise _syntax("Unexpected <EOF>.", tok.line, tok.col)
        while self.peek().kind != "eof":
            tok = self.peek()
            if self.at("{"):
                ops.append(_Operation("query", None, [], self.selection_set()))
            elif tok.kind == "name" and tok.value in ("query", "mutation", "subscription"):
                ops.append(self.operation())
            elif tok.kind == "name" and tok.value == "fragment":
                frag = self.fragment()
                if frag.name in frags:
                    raise _invalid(f'There can be only one fragment named "{frag.name}".',
                                   frag.line, frag.col)
                frags[frag.name] = frag
            else:
                raise _syntax(f"Unexpected {self._describe(tok)}.", tok.line, tok.col)
        return _Document(ops, frags)

    def operation(self) -> _Operation:
        kind = self.take().value
        name = self.name().value if self.peek().kind == "name" else None
        var_defs: list[tuple[str, str, Any, bool]] = []
        if self.at("("):
            self.take()
            while not self.at(")"):
                self.expect("$")
                var = self.name().value
                self.expect(":")
                type_ref = self.type_ref()
                default, has_default = None, False
                if self.at("="):
                    self.take()
                    default, has_default = self.value(const=True), True
                self.directives(const=True)
                var_defs.append((var, type_ref, default, has_default))
            self.take()
        self.directives(const=False)
        return _Operation(kind, name, var_defs, self.selection_set())

    def fragment(self) -> _Fragment:
        start = self.take()
        name = self.name().value
        if name == "on":
            raise _syntax('Unexpected Name "on".', start.line, start.col)
        on = self.name()
        if on.value != "on":
            raise _syntax(f'Expected "on", found {self._describe(on)}.', on.line, on.col)
        type_cond = self.name().value
        self.directives(const=False)
        return _Fragment(name, type_cond, self.selection_set(), start.line, start.col)

    def type_ref(self) -> str:
        if self.at("["):
            self.take()
            inner = self.type_ref()
            self.expect("]")
            out = f"[{inner}]"
        else:
            out = self.name().value
        if self.at("!"):
            self.take()
            out += "!"
        return out

    def directives(self, const: bool) -> list[tuple[str, dict[str, Any]]]:
        out = []
        while self.at("@"):
            self.take()
            name = self.name().value
            out.append((name, self.arguments(const) if self.at("(") else {}))
        return out

    def selection_set(self) -> list[Any]:
        self.expect("{")
        out = []
        while not self.at("}"):
            if self.peek().kind == "eof":
                tok = self.peek()
                raise _syntax("Expected Name, found <EOF>.", tok.line, tok.col)
            out.append(self.selection())
        if not out:
            tok = self.peek()
            raise _syntax('Expected Name, found "}".', tok.line, tok.col)
        self.take()
        return out

    def selection(self) -> Any:
        tok = self.peek()
        if self.at("..."):
            self.take()
            nxt = self.peek()
            if nxt.kind == "name" and nxt.value == "on":
                self.take()
                cond = self.name().value
                dirs = self.directives(const=False)
                return _Inline(cond, dirs, self.selection_set(), tok.line, tok.col)
            if nxt.kind == "name":
                name = self.take().value
                return _Spread(name, self.directives(const=False), tok.line, tok.col)
            dirs = self.directives(const=False)
            return _Inline(None, dirs, self.selection_set(), tok.line, tok.col)
        first = self.name()
        alias, name = None, first.value
        if self.at(":"):
            self.take()
            alias, name = first.value, self.name().value
        args = self.arguments(const=False) if self.at("(") else {}
        dirs = self.directives(const=False)
        subs = self.selection_set() if self.at("{") else None
        return _Field(alias, name, args, dirs, subs, first.line, first.col)

    def arguments(self, const: bool) -> dict[str, Any]:
        self.expect("(")
        out: dict[str, Any] = {}
        while not self.at(")"):
            name = self.name()
            if name.value in out:
                raise _invalid(f'There can be only one argument named "{name.value}".', name.line, name.col)
            self.expect(":")
            out[name.value] = self.value(const)
        self.take()
        return out

    def value(self, const: bool) -> Any:
        tok = self.take()
        if tok.kind == "punct":
            if tok.value == "$" and not const:
                return _Var(self.name().value)
            if tok.value == "[":
                items = []
                while not self.at("]"):
                    if self.peek().kind == "eof":
                        raise _syntax("Expected \"]\", found <EOF>.", self.peek().line, self.peek().col)
                    items.append(self.value(const))
                self.take()
                return items
            if tok.value == "{":
                obj: dict[str, Any] = {}
                while not self.at("}"):
                    key = self.name().value
                    self.expect(":")
                    obj[key] = self.value(const)
                self.take()
                return obj
        elif tok.kind == "int":
            return int(tok.value)
        elif tok.kind == "float":
            return float(tok.value)
        elif tok.kind == "string":
            return tok.value
        elif tok.kind == "name":
            return {"true": True, "false": False, "null": None}.get(tok.value, _Enum(tok.value))
        raise _syntax(f"Unexpected {self._describe(tok)}.", tok.line, tok.col)


def parse_document(text: str) -> _Document:
    """Parse a GraphQL executable document (raises :class:`GraphQLError`)."""
    return _Parser(text).document()


# The part of Cato's schema this server answers (types as in the production introspection).
_LEAVES = {"String", "Int", "Float", "Boolean", "ID", "DateTime", "Map", "TimeFrame", "EntityType"}
_OBJECTS: dict[str, dict[str, str]] = {
    "Query": {"eventsFeed": "EventsFeedData", "auditFeed": "AuditFeed"},
    "Mutation": {},
    "Subscription": {},
    "EventsFeedData": {"marker": "String", "fetchedCount": "Int!", "accounts": "[EventsFeedAccountRecords]"},
    "EventsFeedAccountRecords": {"id": "ID", "errorString": "String", "records": "[EventRecord!]"},
    "EventRecord": {"time": "DateTime", "fieldsMap": "Map", "flatFields": "[[String!]]"},
    "AuditFeed": {
        "from": "DateTime", "to": "DateTime", "marker": "String", "fetchedCount": "Int!",
        "hasMore": "Boolean", "accounts": "[AuditFeedAccountRecords]",
    },
    "AuditFeedAccountRecords": {"id": "ID", "records": "[AuditRecord!]"},
    "AuditRecord": {
        "admin": "Entity", "apiKey": "Entity", "object": "Entity", "account": "EntityInfo",
        "time": "DateTime", "fields": "[AuditField!]", "fieldsMap": "Map", "flatFields": "[[String!]]",
    },
    "Entity": {"id": "ID!", "name": "String", "type": "EntityType!"},
    "EntityInfo": {"entity": "Entity!", "description": "String!", "helperFields": "Map!"},
    "AuditField": {"name": "String!", "value": "Value!"},
    "StringValue": {"string": "String"},
    "DateValue": {"date": "DateTime"},
}
_UNIONS = {"Value": {"StringValue", "DateValue", "Entity"}}
_ARGS: dict[tuple[str, str], dict[str, str]] = {
    ("Query", "eventsFeed"): {
        "accountIDs": "[ID!]", "filters": "[EventFeedFieldFilterInput!]", "marker": "String",
    },
    ("Query", "auditFeed"): {
        "accountIDs": "[ID!]", "timeFrame": "TimeFrame!", "filters": "[AuditFieldFilterInput!]",
        "marker": "String",
    },
    ("EventsFeedAccountRecords", "records"): {"fieldNames": "[EventFieldName!]"},
    ("AuditFeedAccountRecords", "records"): {"fieldNames": "[AuditFieldName!]"},
}
EVENT_FILTER_FIELDS = ("event_sub_type", "event_type")
EVENT_FILTER_OPERATORS = ("is", "is_not", "in", "not_in")
AUDIT_FIELD_NAMES = (
    "admin", "apiKey", "model_name", "admin_id", "module", "audit_creation_type", "insertion_date",
    "change_type", "creation_date", "model_type", "account", "account_id",
)
AUDIT_OPERATORS = ("is", "is_not", "in", "not_in", "exists", "not_exists", "between", "not_between")


def _named(type_ref: str) -> str:
    return type_ref.replace("[", "").replace("]", "").replace("!", "")


def _validate(
    selections: list[Any], type_name: str, doc: _Document, seen: frozenset[str] = frozenset()
) -> None:
    for sel in selections:
        if isinstance(sel, _Field):
            if sel.name == "__typename":
                if sel.selections:
                    raise _invalid('Field "__typename" must not have a selection since type "String!" '
                                   "has no subfields.", sel.line, sel.col)
                continue
            if type_name in _UNIONS:
                raise _invalid(f'Cannot query field "{sel.name}" on type "{type_name}". Did you mean to '
                               "use an inline fragment?", sel.line, sel.col)
            fields = _OBJECTS[type_name]
            if sel.name not in fields:
                raise _invalid(f'Cannot query field "{sel.name}" on type "{type_name}".', sel.line, sel.col)
            declared = _ARGS.get((type_name, sel.name), {})
            for arg in sel.args:
                if arg not in declared:
                    raise _invalid(f'Unknown argument "{arg}" on field "{type_name}.{sel.name}".',
                                   sel.line, sel.col)
            for arg, arg_type in declared.items():
                if arg_type.endswith("!") and arg not in sel.args:
                    raise _invalid(f'Field "{sel.name}" argument "{arg}" of type "{arg_type}" is required, '
                                   "but it was not provided.", sel.line, sel.col)
            field_type = fields[sel.name]
            child = _named(field_type)
            if child in _LEAVES:
                if sel.selections:
                    raise _invalid(f'Field "{sel.name}" must not have a selection since type "{field_type}" '
                                   "has no subfields.", sel.line, sel.col)
            elif not sel.selections:
                raise _invalid(f'Field "{sel.name}" of type "{field_type}" must have a selection of '
                               f'subfields. Did you mean "{sel.name} {{ ... }}"?', sel.line, sel.col)
            else:
                _validate(sel.selections, child, doc, seen)
        elif isinstance(sel, _Inline):
            cond = sel.type_cond or type_name
            _check_spread(cond, type_name, sel.line, sel.col)
            _validate(sel.selections, cond, doc, seen)
        else:
            frag = doc.fragments.get(sel.name)
            if frag is None:
                raise _invalid(f'Unknown fragment "{sel.name}".', sel.line, sel.col)
            if sel.name in seen:
                raise _invalid(f'Cannot spread fragment "{sel.name}" within itself.', sel.line, sel.col)
            _check_spread(frag.type_cond, type_name, sel.line, sel.col)
            _validate(frag.selections, frag.type_cond, doc, seen | {sel.name})


def _check_spread(cond: str, parent: str, line: int, col: int) -> None:
    if cond not in _OBJECTS and cond not in _UNIONS:
        raise _invalid(f'Unknown type "{cond}".', line, col)
    possible_cond = _UNIONS.get(cond, {cond})
    possible_parent = _UNIONS.get(parent, {parent})
    if not possible_cond & possible_parent:
        raise _invalid(f'Fragment cannot be spread here as objects of type "{parent}" can never be of type '
                       f'"{cond}".', line, col)


def _resolve_value(value: Any, variables: Mapping[str, Any], defined: set[str]) -> Any:
    if isinstance(value, _Var):
        if value.name not in defined:
            raise _invalid(f'Variable "${value.name}" is not defined.')
        return variables.get(value.name)
    if isinstance(value, _Enum):
        return str(value)
    if isinstance(value, list):
        return [_resolve_value(v, variables, defined) for v in value]
    if isinstance(value, dict):
        return {k: _resolve_value(v, variables, defined) for k, v in value.items()}
    return value


@dataclass
class _Exec:
    doc: _Document
    variables: dict[str, Any]
    defined: set[str]

    def args(self, fld: _Field) -> dict[str, Any]:
        out = {}
        for name, value in fld.args.items():
            if isinstance(value, _Var) and value.name in self.defined and value.name not in self.variables:
                continue  # a variable that was not given: as if the argument were absent
            out[name] = _resolve_value(value, self.variables, self.defined)
        return out

    def included(self, directives: list[tuple[str, dict[str, Any]]]) -> bool:
        for name, args in directives:
            cond = _resolve_value(args.get("if"), self.variables, self.defined)
            if name == "skip" and cond is True:
                return False
            if name == "include" and cond is not True:
                return False
        return True

    def collect(self, selections: list[Any], concrete: str, out: dict[str, list[_Field]] | None = None,
                ) -> dict[str, list[_Field]]:
        """GraphQL's CollectFields: fields by response key, fragments that apply merged in."""
        out = {} if out is None else out
        for sel in selections:
            if not self.included(sel.directives):
                continue
            if isinstance(sel, _Field):
                out.setdefault(sel.key, []).append(sel)
                continue
            if isinstance(sel, _Inline):
                cond, subs = sel.type_cond, sel.selections
            else:
                frag = self.doc.fragments[sel.name]
                cond, subs = frag.type_cond, frag.selections
            if cond is None or cond == concrete or concrete in _UNIONS.get(cond, ()):
                self.collect(subs, concrete, out)
        return out

    def project(self, value: Any, type_name: str, selections: list[Any]) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [self.project(item, type_name, selections) for item in value]
        concrete = value.get("__typename", type_name) if type_name in _UNIONS else type_name
        out: dict[str, Any] = {}
        for key, fields in self.collect(selections, concrete).items():
            fld = fields[0]
            if fld.name == "__typename":
                out[key] = concrete
                continue
            raw = value.get(fld.name)
            if fld.name == "flatFields" and raw is None and value.get("fieldsMap") is not None:
                raw = [[k, _flat(v)] for k, v in value["fieldsMap"].items()]  # derived when asked for
            transform = value.get(f"__args_{fld.name}")
            if transform is not None:
                raw = transform(raw, self.args(fld))
            child = _named(_OBJECTS[concrete][fld.name])
            if child in _LEAVES:
                out[key] = raw
            else:
                subs = [s for f in fields for s in (f.selections or [])]
                out[key] = self.project(raw, child, subs)
        return out


def _coerce_variables(op: _Operation, given: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, type_ref, default, has_default in op.var_defs:
        if name in given:
            if given[name] is None and type_ref.endswith("!"):
                raise _invalid(f'Variable "${name}" of non-null type "{type_ref}" must not be null.')
            out[name] = given[name]
        elif has_default:
            out[name] = _resolve_value(default, {}, set())
        elif type_ref.endswith("!"):
            raise _invalid(f'Variable "${name}" of required type "{type_ref}" was not provided.')
    return out


def _as_list(value: Any) -> list[Any] | None:
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


def _ids(value: Any) -> list[str] | None:
    items = _as_list(value)
    if items is None:
        return None
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise _invalid(f"ID cannot represent value: {json.dumps(item)}")
        out.append(str(item))
    return out


def _string(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise _invalid(f"{what}: String cannot represent a non string value: {json.dumps(value)}")


# --------------------------------------------------------------------------------------------
# Server state


def _flat(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _text(value: Any) -> Any:
    """A fieldsMap value as the API gives it: text, lists joined with ", ", entities kept."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_flat(_text(v)) for v in value)
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return str(value)


@dataclass
class _Event:
    seq: int
    enqueued: float
    record: dict[str, Any]  # the EventRecord: time, fieldsMap, flatFields


@dataclass
class _Audit:
    seq: int
    time_ms: int
    record: dict[str, Any]


@dataclass
class _Account:
    account_id: str
    events: list[_Event] = field(default_factory=list)
    base_seq: int = 0  # seq of events[0] (or the next seq when empty)
    audits: list[_Audit] = field(default_factory=list)

    @property
    def next_seq(self) -> int:
        return self.base_seq + len(self.events)


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the server saw."""

    time: float
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None
    operations: tuple[str, ...]  # root fields asked for (eventsFeed, auditFeed, ...)
    fault: str | None
    status: int


@dataclass(frozen=True)
class IssuedMarker:
    """A marker handed out in a response."""

    time: float
    operation: str
    accounts: tuple[str, ...]
    marker: str
    positions: dict[str, int]  # eventsFeed: the next seq per account; auditFeed: {"ms": ...}
    fetched: int


@dataclass(frozen=True)
class Gap:
    """Events a marker pointed at that were no longer kept (dropped by retention)."""

    time: float
    account_id: str
    first_missing_seq: int
    missing: int


@dataclass
class _Fault:
    kind: str
    operation: str | None
    message: str | None
    delay: float
    retry_after: str | None


def make_event(**fields: Any) -> dict[str, Any]:
    """A realistic Security / Internet Firewall event (fields may override or add)."""
    event: dict[str, Any] = {
        "event_type": "Security",
        "event_sub_type": "Internet Firewall",
        "action": "Block",
        "rule_name": "Block Malicious Categories",
        "src_ip": "10.0.0.10",
        "src_port": 51000,
        "dest_ip": "203.0.113.55",
        "dest_port": 443,
        "ip_protocol": "TCP",
        "pop_name": "Frankfurt",
        "src_is_site_or_vpn": "Site",
        "src_site_name": "branch-1",
        "app_stack": ["TCP", "TLS", "HTTP(S)"],
        "categories": ["Malware"],
        "event_count": 1,
        "static_host": False,
        "user_name": "alice@example.com",
    }
    event.update(fields)
    return event


def make_audit_record(**fields: Any) -> dict[str, Any]:
    """A realistic audit record (site renamed by an admin); fields may override or add."""
    record: dict[str, Any] = {
        "admin": "admin@example.com",
        "admin_id": "31363",
        "change_type": "MODIFIED",
        "model_name": "branch-1",
        "model_type": "Site",
        "module": "Network",
        "change.Before.name": "branch-01",
        "change.After.name": "branch-1",
    }
    record.update(fields)
    return record


class CatoApiServer:
    """See the module docstring.

    Constructor arguments (all optional):

    - ``keys``: ``{api_key: [account ids it may read]}``; default ``{DEFAULT_API_KEY: [DEFAULT_ACCOUNT]}``.
    - ``page_size`` (3000), ``audit_page_size`` (1000): records per call at most.
    - ``rate_limits`` (``{"eventsFeed": 100, "auditFeed": 5}``), ``default_rate_limit`` (120),
      ``rate_window_secs`` (60): calls per query per account in a sliding window.
    - ``retention_secs`` (7 days) and ``purge_interval_secs`` (0: continuous; 86400: Cato's daily sweep).
    - ``marker_ttl_secs`` (3 days); ``expired_marker``: ``"error"`` (top-level ``marker expired``)
      or ``"reset"`` (silently restart from now).
    - ``empty_marker_start``: ``"now"`` (since 2025-04-27) or ``"oldest"`` (before).
    - ``empty_marker_when_drained`` (True): a call that finds nothing new answers ``marker: ""``.
    - ``audit_inclusive_marker`` (True): the next auditFeed page starts at the marker's millisecond.
    - ``validation_error_status`` (200): HTTP status of parse and validation errors.
    - ``clock``: a :class:`CatoClock`; ``cert_dir``: where to mint the certificates (default a
      temporary directory removed by :meth:`stop`).
    """

    def __init__(
        self,
        keys: Mapping[str, Iterable[str | int]] | None = None,
        *,
        page_size: int = EVENTS_PAGE_SIZE,
        audit_page_size: int = AUDIT_PAGE_SIZE,
        rate_limits: Mapping[str, int] | None = None,
        default_rate_limit: int = DEFAULT_RATE_LIMIT,
        rate_window_secs: float = 60.0,
        retention_secs: float = RETENTION_SECS,
        purge_interval_secs: float = 0.0,
        marker_ttl_secs: float = MARKER_TTL_SECS,
        expired_marker: str = "error",
        empty_marker_start: str = "now",
        empty_marker_when_drained: bool = True,
        audit_inclusive_marker: bool = True,
        validation_error_status: int = 200,
        clock: CatoClock | None = None,
        cert_dir: Path | str | None = None,
    ) -> None:
        if expired_marker not in ("error", "reset"):
            raise ValueError("expired_marker must be 'error' or 'reset'")
        if empty_marker_start not in ("now", "oldest"):
            raise ValueError("empty_marker_start must be 'now' or 'oldest'")
        if page_size < 1 or audit_page_size < 1:
            raise ValueError("page sizes must be at least 1")
        self.page_size = page_size
        self.audit_page_size = audit_page_size
        self.rate_limits = dict(RATE_LIMITS if rate_limits is None else rate_limits)
        self.default_rate_limit = default_rate_limit
        self.rate_window_secs = rate_window_secs
        self.retention_secs = retention_secs
        self.purge_interval_secs = purge_interval_secs
        self.marker_ttl_secs = marker_ttl_secs
        self.expired_marker = expired_marker
        self.empty_marker_start = empty_marker_start
        self.empty_marker_when_drained = empty_marker_when_drained
        self.audit_inclusive_marker = audit_inclusive_marker
        self.validation_error_status = validation_error_status
        self.clock = clock or CatoClock()

        self._lock = threading.RLock()
        self._keys: dict[str, set[str]] = {}
        for key, accounts in (keys if keys is not None else {DEFAULT_API_KEY: [DEFAULT_ACCOUNT]}).items():
            self.add_key(key, accounts)
        self._accounts: dict[str, _Account] = {}
        self._marker_used: dict[str, float] = {}
        self._marker_positions: dict[str, dict[str, int]] = {}
        self._rate: dict[tuple[str, str], deque[float]] = {}
        self._faults: list[_Fault] = []
        self._account_errors: dict[str, str] = {}
        self._audit_seq = 0

        self.requests: list[RequestRecord] = []
        self.calls: Counter[tuple[str, str]] = Counter()  # (account, query): authenticated calls naming it
        self.rate_limited: Counter[tuple[str, str]] = Counter()  # (account, query): calls refused for it
        self.markers_issued: list[IssuedMarker] = []
        self.gaps: list[Gap] = []
        self.expired_markers: list[str] = []  # markers refused (or reset) as expired

        self._cert_dir_arg = Path(cert_dir) if cert_dir is not None else None
        self._tmpdir: str | None = None
        self._ca_file: Path | None = None
        self._httpd: _TLSServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[ssl.SSLSocket] = set()
        self._conns_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> CatoApiServer:
        if self._httpd is not None:
            return self
        if self._cert_dir_arg is None:
            self._tmpdir = tempfile.mkdtemp(prefix="cato-api-")
            directory = Path(self._tmpdir)
        else:
            directory = self._cert_dir_arg
        tls = mint_server_certs(directory)
        self._ca_file = tls.ca_file
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        self._httpd = _TLSServer(("127.0.0.1", 0), _Handler, ctx, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="cato-api",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
            with self._conns_lock:
                conns = list(self._conns)
            for conn in conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> CatoApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:<port>`` (clients that append ``/api/v1/graphql2`` themselves)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The GraphQL endpoint, as ``https://api.catonetworks.com/api/v1/graphql2`` is for Cato."""
        return self.base_url + GRAPHQL_PATH

    @property
    def ca_file(self) -> Path:
        """PEM of the CA that signed the server's certificate (valid for 127.0.0.1 and localhost)."""
        if self._ca_file is None:
            raise RuntimeError("the server is not running")
        return self._ca_file

    def client_context(self) -> ssl.SSLContext:
        """An ``ssl`` client context that trusts only this server's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- configuration and data ------------------------------------------------------------

    def add_key(self, api_key: str, accounts: Iterable[str | int]) -> None:
        """Let ``api_key`` read ``accounts`` (added to what it may read already)."""
        with self._lock:
            self._keys.setdefault(api_key, set()).update(str(a) for a in accounts)

    def revoke_key(self, api_key: str) -> None:
        """Forget ``api_key`` (as after a rotation or expiry): it then gets ``permission denied``."""
        with self._lock:
            self._keys.pop(api_key, None)

    def add_events(
        self, account_id: str | int, events: Iterable[Mapping[str, Any]], *, at: float | None = None
    ) -> list[dict[str, Any]]:
        """Queue events for an account; returns their fieldsMaps as the API will serve them.

        Values become text as in the API (numbers, booleans; lists joined with ", "); dict values
        (entities) are kept as objects. ``time`` (epoch ms), ``time_str``, ``event_id``,
        ``internalId`` and ``account_id`` are filled in when missing. ``at`` (epoch seconds,
        default now) is when the events entered the queue, which retention counts from; queue
        them in that order.
        """
        account = str(account_id)
        with self._lock:
            now = self.clock.now() if at is None else float(at)
            state = self._account(account)
            self._purge(state)
            out = []
            for raw in events:
                fields = {str(k): v if type(v) is str else _text(v) for k, v in raw.items()}
                if not fields.get("time"):
                    fields["time"] = str(_ms(now))
                try:
                    event_ms = int(float(fields["time"]))
                except (TypeError, ValueError):
                    event_ms = _ms(now)
                stamp = _rfc3339(event_ms / 1000)
                fields.setdefault("time_str", stamp)
                event_id = fields.get("event_id") or fields.get("internalId") or secrets.token_hex(8)
                fields.setdefault("event_id", event_id)
                fields.setdefault("internalId", event_id)
                fields.setdefault("account_id", account)
                record = {"__typename": "EventRecord", "time": stamp, "fieldsMap": fields}
                state.events.append(_Event(state.next_seq, now, record))
                out.append(dict(fields))
            return out

    def add_audit_records(
        self, account_id: str | int, records: Iterable[Mapping[str, Any]], *, at: float | None = None
    ) -> list[dict[str, Any]]:
        """Store audit records for an account; returns their fieldsMaps.

        ``insertion_date`` (epoch ms; default ``at`` or now) places a record in time;
        ``creation_date``, ``account_id``, ``admin``, ``admin_id``, ``change_type`` are filled in
        when missing. Keys ``admin_entity``, ``object_entity``, ``api_key_entity`` (dicts with
        id/name/type) override the entities built from ``admin``/``admin_id`` and ``model_name``.
        """
        account = str(account_id)
        with self._lock:
            base = self.clock.now() if at is None else float(at)
            state = self._account(account)
            out = []
            for raw in records:
                extra = {k: raw[k] for k in ("admin_entity", "object_entity", "api_key_entity") if k in raw}
                fields = {str(k): _text(v) for k, v in raw.items() if k not in extra}
                fields.setdefault("insertion_date", str(_ms(base)))
                try:
                    t_ms = int(float(fields["insertion_date"]))
                except (TypeError, ValueError):
                    t_ms = _ms(base)
                fields["insertion_date"] = str(t_ms)
                fields.setdefault("creation_date", str(t_ms))
                fields.setdefault("account_id", account)
                fields.setdefault("admin", "admin@example.com")
                fields.setdefault("admin_id", "1")
                fields.setdefault("change_type", "MODIFIED")
                admin = dict(extra.get("admin_entity") or {
                    "id": fields["admin_id"], "name": fields["admin"], "type": "admin"})
                obj = dict(extra.get("object_entity") or {
                    "id": fields.get("model_id", fields.get("model_name", "")),
                    "name": fields.get("model_name", ""), "type": "any"})
                api_key = extra.get("api_key_entity")
                record = {
                    "__typename": "AuditRecord",
                    "admin": {"__typename": "Entity", **admin},
                    "apiKey": {"__typename": "Entity", **api_key} if api_key else None,
                    "object": {"__typename": "Entity", **obj},
                    "account": {
                        "__typename": "EntityInfo",
                        "entity": {"__typename": "Entity", "id": account,
                                   "name": fields.get("account_name", ""), "type": "account"},
                        "description": "",
                        "helperFields": {},
                    },
                    "time": _rfc3339(t_ms / 1000),
                    "fields": [
                        {"__typename": "AuditField", "name": k,
                         "value": ({"__typename": "Entity", **v} if isinstance(v, Mapping)
                                   else {"__typename": "StringValue", "string": v})}
                        for k, v in fields.items()
                    ],
                    "fieldsMap": fields,
                }
                self._audit_seq += 1
                state.audits.append(_Audit(self._audit_seq, t_ms, record))
                out.append(dict(fields))
            state.audits.sort(key=lambda a: (a.time_ms, a.seq))
            return out

    def queue_depth(self, account_id: str | int) -> int:
        """Events of the account still kept (read or not)."""
        with self._lock:
            state = self._account(str(account_id))
            self._purge(state)
            return len(state.events)

    def mint_marker(self, account_ids: Iterable[str | int], position: str = "oldest") -> str:
        """A valid eventsFeed marker at the oldest kept event (``"oldest"``) or the end (``"now"``).

        Stands for a marker a client saved earlier, e.g. to read what is queued already.
        """
        with self._lock:
            now = self.clock.now()
            positions = {}
            for account in (str(a) for a in account_ids):
                state = self._account(account)
                self._purge(state)
                positions[account] = state.base_seq if position == "oldest" else state.next_seq
            return self._issue_marker(positions, now, "eventsFeed", 0)

    def fail_next(
        self,
        n: int = 1,
        kind: str = "http_503",
        *,
        operation: str | None = None,
        message: str | None = None,
        delay: float = 2.0,
        retry_after: str | int | None = None,
    ) -> None:
        """Queue ``n`` faults of ``kind`` for the next GraphQL requests (for ``operation`` only if given).

        Kinds: ``http_500``, ``http_502``, ``http_503`` (``retry_after`` adds the header),
        ``reset`` (TCP RST, no answer), ``truncate`` (half an answer, then close),
        ``graphql_error`` (HTTP 200, a top-level error with ``message``, ``data.<op>: null``),
        ``null_data`` (HTTP 200, ``data.<op>: null`` without errors), ``rate_limit`` (the rate-limit
        answer), ``slow`` (answers normally after ``delay`` seconds of real time). Except for
        ``slow``, a fault replaces the request: nothing is counted or handed out.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            ra = None if retry_after is None else str(retry_after)
            self._faults.extend(_Fault(kind, operation, message, delay, ra) for _ in range(n))

    def set_account_error(self, account_id: str | int, message: str | None) -> None:
        """Answer eventsFeed for the account with ``errorString: message`` and ``records: null``.

        The other accounts of the call are served; the account's position does not move. ``None``
        ends it. (Cato's texts for errorString are not published; this lets a test choose one.)
        """
        with self._lock:
            if message is None:
                self._account_errors.pop(str(account_id), None)
            else:
                self._account_errors[str(account_id)] = message

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._rate.clear()

    # -- introspection ---------------------------------------------------------------------

    def call_count(self, account_id: str | int, operation: str = "eventsFeed") -> int:
        """Authenticated calls of ``operation`` that named the account (refused ones included)."""
        with self._lock:
            return self.calls[(str(account_id), operation)]

    @property
    def last_request_headers(self) -> dict[str, str]:
        """Headers (lower-cased names) of the last request, ``{}`` before any."""
        with self._lock:
            return dict(self.requests[-1].headers) if self.requests else {}

    def markers_for(self, operation: str = "eventsFeed") -> list[str]:
        """Markers handed out for ``operation``, in order (empty ones included)."""
        with self._lock:
            return [m.marker for m in self.markers_issued if m.operation == operation]

    # -- a small client, for tests ---------------------------------------------------------

    def query(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        operation_name: str | None = None,
        accept_gzip: bool = False,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """POST a GraphQL request over TLS; returns (HTTP status, parsed JSON or the raw text)."""
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        if operation_name is not None:
            payload["operationName"] = operation_name
        body = json.dumps(payload).encode()
        hdrs = {"Content-Type": "application/json"}
        if api_key is not None:
            hdrs["x-api-key"] = api_key
        if accept_gzip:
            hdrs["Accept-Encoding"] = "gzip, deflate, br"
        hdrs.update(headers or {})
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                           context=self.client_context())
        try:
            conn.request("POST", GRAPHQL_PATH, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            if resp.getheader("Content-Encoding", "") == "gzip":
                data = gzip.decompress(data)
            try:
                return resp.status, json.loads(data)
            except ValueError:
                return resp.status, data.decode("utf-8", "replace")
        finally:
            conn.close()

    # -- internals: state --------------------------------------------------------------------

    def _account(self, account: str) -> _Account:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = _Account(account)
        return state

    def _purge(self, state: _Account) -> None:
        now = self.clock.now()
        cutoff = now - self.retention_secs
        if self.purge_interval_secs > 0:
            sweep = math.floor(now / self.purge_interval_secs) * self.purge_interval_secs
            cutoff = sweep - self.retention_secs
        drop = 0
        for event in state.events:
            if event.enqueued >= cutoff:
                break
            drop += 1
        if drop:
            del state.events[:drop]
            state.base_seq += drop

    def _encode_marker(self, positions: Mapping[str, int]) -> str:
        raw = json.dumps({"v": 1, "p": dict(sorted(positions.items()))}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _issue_marker(self, positions: dict[str, int], now: float, operation: str, fetched: int) -> str:
        marker = self._encode_marker(positions)
        self._marker_used[marker] = now
        self._marker_positions[marker] = dict(positions)
        self.markers_issued.append(
            IssuedMarker(now, operation, tuple(positions), marker, dict(positions), fetched))
        return marker

    def _check_rate(self, accounts: Sequence[str], operation: str, now: float) -> None:
        limit = self.rate_limits.get(operation, self.default_rate_limit)
        windows = []
        for account in dict.fromkeys(accounts):
            window = self._rate.setdefault((account, operation), deque())
            while window and window[0] <= now - self.rate_window_secs:
                window.popleft()
            windows.append((account, window))
        if any(len(window) >= limit for _, window in windows):
            for account, _ in windows:
                self.rate_limited[(account, operation)] += 1
            raise GraphQLError(RATE_LIMIT_PREFIX + operation)
        for _, window in windows:
            window.append(now)

    def _authorize(self, api_key: str | None) -> set[str]:
        allowed = self._keys.get(api_key or "")
        if api_key is None or allowed is None:
            raise GraphQLError(PERMISSION_DENIED, extensions={"code": "Code104"})
        return allowed

    # -- internals: eventsFeed -----------------------------------------------------------------

    def _events_feed(self, api_key: str | None, args: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        allowed_set = self._authorize(api_key)
        accounts = _ids(args.get("accountIDs"))
        if accounts is None:
            accounts = sorted(allowed_set)
        accounts = list(dict.fromkeys(accounts))
        marker = _string(args.get("marker"), "marker")
        filters = self._event_filters(args.get("filters"))
        for account in accounts:
            self.calls[(account, "eventsFeed")] += 1
        allowed = [a for a in accounts if a in allowed_set]
        self._check_rate(allowed, "eventsFeed", now)

        positions: dict[str, int] = {}
        reset = False
        if marker:
            if marker not in self._marker_used:
                raise GraphQLError(INVALID_MARKER)
            if now - self._marker_used[marker] > self.marker_ttl_secs:
                self.expired_markers.append(marker)
                if self.expired_marker == "error":
                    raise GraphQLError(MARKER_EXPIRED)
                reset = True  # as a Kafka group whose offsets expired: from now, silently
            else:
                self._marker_used[marker] = now
                positions = dict(self._marker_positions[marker])

        lost_to_reset = dict(self._marker_positions[marker]) if reset and marker else {}
        candidates: dict[str, tuple[list[_Event], bool]] = {}
        blocked = [a for a in allowed if a in self._account_errors]
        for account in allowed:
            state = self._account(account)
            self._purge(state)
            if account in lost_to_reset:  # what the expired marker had not read yet is skipped
                lost_from = max(lost_to_reset[account], state.base_seq)
                if state.next_seq > lost_from:
                    self.gaps.append(Gap(now, account, lost_from, state.next_seq - lost_from))
            if account not in positions:  # an empty marker, a reset, or an account it does not cover
                oldest = not marker and self.empty_marker_start == "oldest"
                positions[account] = state.base_seq if oldest else state.next_seq
            pos = positions[account]
            if pos < state.base_seq:
                self.gaps.append(Gap(now, account, pos, state.base_seq - pos))
                pos = state.base_seq
            positions[account] = pos = min(pos, state.next_seq)
            candidates[account] = ([], False) if account in blocked else self._scan(state, pos, filters)

        take = self._share({a: len(c[0]) for a, c in candidates.items()})
        page: dict[str, list[dict[str, Any]]] = {}
        new_positions = dict(positions)
        fetched = 0
        for account in allowed:
            matches, exhausted = candidates[account]
            k = take.get(account, 0)
            page[account] = [e.record for e in matches[:k]]
            fetched += k
            if k == len(matches) and exhausted:
                new_positions[account] = self._account(account).next_seq
            elif k:
                new_positions[account] = matches[k - 1].seq + 1

        continuing = bool(marker) and not reset
        if fetched == 0 and continuing:
            out_marker = "" if self.empty_marker_when_drained else (marker or "")
            self.markers_issued.append(IssuedMarker(now, "eventsFeed", tuple(allowed), out_marker,
                                                    {} if not out_marker else dict(positions), 0))
        else:  # records, or the baseline of a call without a (usable) marker
            out_marker = self._issue_marker(new_positions, now, "eventsFeed", fetched)

        out_accounts = []
        for account in accounts:
            if account in self._account_errors and account in allowed_set:
                out_accounts.append({
                    "__typename": "EventsFeedAccountRecords", "id": account,
                    "errorString": self._account_errors[account], "records": None,
                })
            elif account in allowed_set:
                out_accounts.append({
                    "__typename": "EventsFeedAccountRecords", "id": account, "errorString": "",
                    "records": page[account], "__args_records": _filter_event_fields,
                })
            else:
                out_accounts.append({
                    "__typename": "EventsFeedAccountRecords", "id": account,
                    "errorString": PERMISSION_DENIED, "records": None,
                })
        return {"__typename": "EventsFeedData", "marker": out_marker, "fetchedCount": fetched,
                "accounts": out_accounts}

    def _scan(self, state: _Account, pos: int, filters: list[tuple[str, str, list[str]]],
              ) -> tuple[list[_Event], bool]:
        start = pos - state.base_seq
        if not filters:
            matches = state.events[start:start + self.page_size]
            return matches, start + len(matches) >= len(state.events)
        matches = []
        for index in range(start, len(state.events)):
            event = state.events[index]
            if _event_matches(event.record["fieldsMap"], filters):
                matches.append(event)
                if len(matches) >= self.page_size:
                    return matches, event.seq + 1 >= state.next_seq
        return matches, True

    def _share(self, available: Mapping[str, int]) -> dict[str, int]:
        """Split ``page_size`` among accounts fairly (water-filling), none above what it has."""
        take = {a: 0 for a in available}
        budget = self.page_size
        while budget > 0:
            hungry = [a for a in available if take[a] < available[a]]
            if not hungry:
                break
            share = max(1, budget // len(hungry))
            for account in hungry:
                more = min(share, available[account] - take[account], budget)
                take[account] += more
                budget -= more
                if budget == 0:
                    break
        return take

    def _event_filters(self, value: Any) -> list[tuple[str, str, list[str]]]:
        out = []
        for item in _as_list(value) or []:
            if not isinstance(item, Mapping):
                raise _invalid("Expected type \"EventFeedFieldFilterInput\" to be an object.")
            for key in item:
                if key not in ("fieldName", "operator", "values"):
                    raise _invalid(f'Field "{key}" is not defined by type "EventFeedFieldFilterInput".')
            name, operator = item.get("fieldName"), item.get("operator")
            if name not in EVENT_FILTER_FIELDS:
                raise _invalid(f'Value "{name}" does not exist in "EventFeedFilterFieldName!" enum.')
            if operator not in EVENT_FILTER_OPERATORS:
                raise _invalid(f'Value "{operator}" does not exist in "EventFeedFilterOperator!" enum.')
            values = [str(v) for v in (_as_list(item.get("values")) or [])]
            out.append((str(name), str(operator), values))
        return out

    # -- internals: auditFeed ------------------------------------------------------------------

    def _audit_feed(self, api_key: str | None, args: dict[str, Any]) -> dict[str, Any]:
        now = self.clock.now()
        allowed_set = self._authorize(api_key)
        accounts = _ids(args.get("accountIDs"))
        accounts = list(dict.fromkeys(sorted(allowed_set) if accounts is None else accounts))
        time_frame = _string(args.get("timeFrame"), "timeFrame")
        marker = _string(args.get("marker"), "marker")
        filters = self._audit_filters(args.get("filters"))
        for account in accounts:
            self.calls[(account, "auditFeed")] += 1
        if any(a not in allowed_set for a in accounts):
            raise GraphQLError(PERMISSION_DENIED, extensions={"code": "Code104"})
        self._check_rate(accounts, "auditFeed", now)
        try:
            start, end = parse_time_frame(time_frame or "", now)
        except ValueError:
            raise GraphQLError(f'invalid timeFrame "{time_frame}"') from None
        from_ms, to_ms = _ms(start), _ms(end)
        lower = from_ms
        if marker:
            match = re.fullmatch(r"(\d+)_.*", marker)
            if not match:
                raise GraphQLError(INVALID_MARKER)
            marker_ms = int(match.group(1))
            lower = max(lower, marker_ms if self.audit_inclusive_marker else marker_ms + 1)
        rows = []
        for index, account in enumerate(accounts):
            for audit in self._account(account).audits:
                if lower <= audit.time_ms <= to_ms and _audit_matches(audit.record["fieldsMap"], filters):
                    rows.append((audit.time_ms, index, audit.seq, account, audit))
        rows.sort(key=lambda r: r[:3])
        chosen, has_more = rows[:self.audit_page_size], len(rows) > self.audit_page_size
        out_marker = f"{chosen[-1][0]}_" if chosen else (marker or "")
        self.markers_issued.append(IssuedMarker(now, "auditFeed", tuple(accounts), out_marker,
                                                {"ms": chosen[-1][0]} if chosen else {}, len(chosen)))
        by_account: dict[str, list[dict[str, Any]]] = {a: [] for a in accounts}
        for _t, _i, _s, account, audit in chosen:
            by_account[account].append(audit.record)
        return {
            "__typename": "AuditFeed", "from": _rfc3339(start), "to": _rfc3339(end), "marker": out_marker,
            "fetchedCount": len(chosen), "hasMore": has_more,
            "accounts": [{"__typename": "AuditFeedAccountRecords", "id": a, "records": by_account[a],
                          "__args_records": _filter_audit_fields} for a in accounts],
        }

    def _audit_filters(self, value: Any) -> list[tuple[str, str, list[str]]]:
        out = []
        for item in _as_list(value) or []:
            if not isinstance(item, Mapping):
                raise _invalid('Expected type "AuditFieldFilterInput" to be an object.')
            for key in item:
                if key not in ("fieldName", "operator", "values"):
                    raise _invalid(f'Field "{key}" is not defined by type "AuditFieldFilterInput".')
            name_input = item.get("fieldName")
            if not isinstance(name_input, Mapping) or set(name_input) != {"AuditFieldName"}:
                raise _invalid('Field "AuditFieldFilterInput.fieldName" of required type "FieldNameInput!" '
                               'must be an object {AuditFieldName: ...}.')
            name, operator = name_input["AuditFieldName"], item.get("operator")
            if name not in AUDIT_FIELD_NAMES:
                raise _invalid(f'Value "{name}" does not exist in "AuditFieldName" enum.')
            if operator not in AUDIT_OPERATORS:
                raise _invalid(f'Value "{operator}" does not exist in "ElasticOperator!" enum.')
            values = [str(v) for v in (_as_list(item.get("values")) or [])]
            out.append((str(name), str(operator), values))
        return out

    # -- internals: one GraphQL request --------------------------------------------------------

    def _execute(self, api_key: str | None, request: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(request, Mapping) or not isinstance(request.get("query"), str):
            return self.validation_error_status, {
                "errors": [_invalid("no operation provided").as_dict()], "data": None}
        variables = request.get("variables") or {}
        if not isinstance(variables, Mapping):
            return self.validation_error_status, {
                "errors": [_invalid("variables must be an object").as_dict()], "data": None}
        try:
            doc = parse_document(request["query"])
            op = _select_operation(doc, request.get("operationName"))
            root = {"query": "Query", "mutation": "Mutation", "subscription": "Subscription"}[op.kind]
            _validate(op.selections, root, doc)
            coerced = _coerce_variables(op, variables)
            ex = _Exec(doc, coerced, {v[0] for v in op.var_defs})
            collected = ex.collect(op.selections, root)
        except GraphQLError as err:
            return self.validation_error_status, {"errors": [err.as_dict()], "data": None}

        errors: list[dict[str, Any]] = []
        data: dict[str, Any] = {}
        for key, fields in collected.items():
            fld = fields[0]
            if fld.name == "__typename":
                data[key] = root
                continue
            try:
                args = ex.args(fld)
                with self._lock:
                    resolver = self._events_feed if fld.name == "eventsFeed" else self._audit_feed
                    value = resolver(api_key, args)
                subs = [s for f in fields for s in (f.selections or [])]
                data[key] = ex.project(value, _named(_OBJECTS["Query"][fld.name]), subs)
            except GraphQLError as err:
                if err.extensions.get("code") == "GRAPHQL_VALIDATION_FAILED":
                    return self.validation_error_status, {"errors": [err.as_dict()], "data": None}
                errors.append(err.as_dict(path=[key]))
                data[key] = None
        return 200, ({"errors": errors, "data": data} if errors else {"data": data})

    def _take_fault(self, operations: Sequence[str]) -> _Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.operation is None or fault.operation in operations:
                    return self._faults.pop(index)
        return None

    def _record(self, handler: _Handler, body: Any, operations: tuple[str, ...], fault: str | None,
                status: int) -> None:
        with self._lock:
            headers = {k.lower(): v for k, v in handler.headers.items()}
            self.requests.append(RequestRecord(self.clock.now(), handler.command, handler.path, headers, body,
                                               operations, fault, status))

    def _serve(self, handler: _Handler) -> None:
        path = urlsplit(handler.path).path
        if handler.command != "POST":
            _read_body(handler)
            status = 404 if path.rstrip("/") != GRAPHQL_PATH else 405
            self._record(handler, None, (), None, status)
            extra = {"Allow": "POST"} if status == 405 else {}
            return _reply(handler, status, b"Not Found\n" if status == 404 else b"Method Not Allowed\n",
                          "text/plain", extra)
        try:
            raw = _request_body(handler)
        except (OSError, EOFError, zlib.error):  # a body that says gzip and is not
            raw = b"\x00"
        if path.rstrip("/") != GRAPHQL_PATH:
            self._record(handler, None, (), None, 404)
            return _reply(handler, 404, b"Not Found\n", "text/plain")
        try:
            request = json.loads(raw or b"null")
        except ValueError as err:
            self._record(handler, None, (), None, 400)
            message = f"json request body could not be decoded: {err}"
            payload = {"errors": [{"message": message}], "data": None}
            return self._reply_json(handler, 400, payload)
        operations = _root_fields(request)
        fault = self._take_fault(operations)
        if fault is not None and fault.kind != "slow":
            return self._apply_fault(handler, request, operations, fault)
        if fault is not None:
            time.sleep(fault.delay)
        status, payload = self._execute(handler.headers.get("x-api-key"), request)
        self._record(handler, request, operations, fault.kind if fault else None, status)
        return self._reply_json(handler, status, payload)

    def _apply_fault(
        self, handler: _Handler, request: Any, operations: tuple[str, ...], fault: _Fault
    ) -> None:
        op = operations[0] if operations else "eventsFeed"
        kind = fault.kind
        status = {"http_500": 500, "http_502": 502, "http_503": 503}.get(kind, 200 if kind != "reset" else 0)
        self._record(handler, request, operations, kind, status)
        if kind in ("http_500", "http_502", "http_503"):
            text = http.client.responses[status]
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return _reply(handler, status, f"<html><body><h1>{status} {text}</h1></body></html>\n".encode(),
                          "text/html", extra)
        if kind == "reset":
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            return None
        if kind == "truncate":
            body = json.dumps({"data": {op: {"marker": "x" * 64, "fetchedCount": 0, "accounts": [
                {"id": "0", "records": [{"fieldsMap": {"pad": "y" * 1024}}]}]}}}).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return None
        if kind == "graphql_error":
            payload = {"errors": [{"message": fault.message or "internal error", "path": [op]}],
                       "data": {op: None}}
        elif kind == "null_data":
            payload = {"data": {op: None}}
        else:
            payload = {"errors": [{"message": RATE_LIMIT_PREFIX + op, "path": [op]}], "data": {op: None}}
        return self._reply_json(handler, 200, payload)

    def _reply_json(self, handler: _Handler, status: int, payload: Any) -> None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        extra = {}
        if "gzip" in handler.headers.get("Accept-Encoding", "").lower():
            body = gzip.compress(body, compresslevel=1)
            extra["Content-Encoding"] = "gzip"
        _reply(handler, status, body, "application/json", extra)

    def _track(self, conn: ssl.SSLSocket, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)


def _event_matches(fields: Mapping[str, Any], filters: list[tuple[str, str, list[str]]]) -> bool:
    for name, operator, values in filters:
        present = fields.get(name)
        hit = present in values
        if operator in ("is", "in") and not hit:
            return False
        if operator in ("is_not", "not_in") and hit:
            return False
    return True


def _audit_matches(fields: Mapping[str, Any], filters: list[tuple[str, str, list[str]]]) -> bool:
    for name, operator, values in filters:
        key = {"account": "account_id", "apiKey": "api_key"}.get(name, name)
        present = fields.get(key)
        if operator in ("exists", "not_exists"):
            ok = (present not in (None, "")) == (operator == "exists")
        elif operator in ("between", "not_between"):
            try:
                lo, hi = float(values[0]), float(values[1])
                inside = present is not None and lo <= float(present) <= hi
            except (IndexError, TypeError, ValueError):
                inside = False
            ok = inside == (operator == "between")
        else:
            ok = (present in values) == (operator in ("is", "in"))
        if not ok:
            return False
    return True


def _filter_event_fields(records: Any, args: Mapping[str, Any]) -> Any:
    names = _as_list(args.get("fieldNames"))
    if records is None or names is None:
        return records
    keep = {str(n) for n in names}
    return [{**r, "fieldsMap": {k: v for k, v in r["fieldsMap"].items() if k in keep}} for r in records]


def _filter_audit_fields(records: Any, args: Mapping[str, Any]) -> Any:
    names = _as_list(args.get("fieldNames"))
    if records is None or names is None:
        return records
    keep = {str(n) for n in names}
    return [{**r, "fieldsMap": {k: v for k, v in r["fieldsMap"].items() if k in keep},
             "fields": [f for f in r["fields"] if f["name"] in keep]} for r in records]


def _select_operation(doc: _Document, name: Any) -> _Operation:
    if not doc.operations:
        raise _invalid("no operation provided")
    if name:
        for op in doc.operations:
            if op.name == name:
                return op
        raise _invalid(f'operation "{name}" not found')
    if len(doc.operations) > 1:
        raise _invalid("operation name is required when the document has several operations")
    return doc.operations[0]


def _root_fields(request: Any) -> tuple[str, ...]:
    """Root field names a request asks for (best effort, for matching faults and the log)."""
    if not isinstance(request, Mapping) or not isinstance(request.get("query"), str):
        return ()
    try:
        doc = parse_document(request["query"])
        op = _select_operation(doc, request.get("operationName"))
    except GraphQLError:
        return ()
    names: list[str] = []

    def walk(selections: list[Any], seen: frozenset[str]) -> None:
        for sel in selections:
            if isinstance(sel, _Field):
                names.append(sel.name)
            elif isinstance(sel, _Inline):
                walk(sel.selections, seen)
            elif sel.name in doc.fragments and sel.name not in seen:
                walk(doc.fragments[sel.name].selections, seen | {sel.name})

    walk(op.selections, frozenset())
    return tuple(dict.fromkeys(n for n in names if n != "__typename"))


# --------------------------------------------------------------------------------------------
# HTTP


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size_line = handler.rfile.readline(1024)
            try:
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
            except ValueError:
                break
            if size == 0:
                while handler.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline(1024)
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _request_body(handler: BaseHTTPRequestHandler) -> bytes:
    raw = _read_body(handler)
    if "gzip" in handler.headers.get("Content-Encoding", "").lower():
        return gzip.decompress(raw)
    return raw


def _reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
           extra: Mapping[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type if content_type != "application/json"
                        else "application/json; charset=utf-8")
    for name, value in (extra or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cato-api-standin"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _TLSServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _handle(self) -> None:
        self.server.owner._serve(self)

    do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[_Handler], ctx: ssl.SSLContext,
                 owner: CatoApiServer) -> None:
        self.ssl_context = ctx
        self.owner = owner
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a failed handshake (a client that does not trust the CA, or plain HTTP)
        self.owner._track(conn, True)
        handler_class: Any = self.RequestHandlerClass
        try:
            handler_class(conn, client_address, self)
        except (OSError, ssl.SSLError):
            pass  # the client went away, or stop() shut the connection
        finally:
            self.owner._track(conn, False)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # connection errors are the tests' business, not stderr's


__all__ = [
    "AUDIT_FEED_QUERY", "DEFAULT_ACCOUNT", "DEFAULT_API_KEY", "EVENTS_FEED_QUERY", "GRAPHQL_PATH",
    "CatoApiServer", "CatoClock", "Gap", "GraphQLError", "IssuedMarker", "RequestRecord",
    "make_audit_record", "make_event", "parse_document", "parse_time_frame",
]

