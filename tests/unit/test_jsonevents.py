"""Unit tests for forwarder.formats.jsonevents: JSON lines and documents split into records, JSON written."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.formats import jsonevents
from forwarder.formats.archive import Member
from forwarder.formats.cef import CefEvent
from forwarder.formats.jsonevents import (
    CEF_JSON_KEYS,
    cef_as_json,
    cef_from_json,
    load_object,
    parse_object,
    raw_member,
    read_object,
    render_json,
)
from forwarder.formats.jsonsplit import JsonSplitter, is_one_object
from forwarder.formats.records import Record, split_records

PROPERTY = settings(
    database=None, max_examples=200, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)


def records_of(data: bytes, limit: int = 1 << 20) -> list[tuple[int, int, bytes, str]]:
    """(ordinal, line, text, kind) of every record of one member holding *data*."""
    found = split_records([Member("m.log", io.BytesIO(data))], "s3://b/k", "auto", limit)
    return [(r.ordinal, r.line, r.text, r.kind) for r in found]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            b'{"a": 1}\n{"b": 2}\n',
            [(0, 1, b'{"a": 1}', "json"), (1, 2, b'{"b": 2}', "json")],
            id="one-object-per-line",
        ),
        pytest.param(
            b'[{"a": 1}, {"b": 2}]\n{"c": 3}\n',
            [(0, 1, b'{"a": 1}', "json"), (1, 1, b'{"b": 2}', "json"), (2, 2, b'{"c": 3}', "json")],
            id="array-on-a-line",
        ),
        pytest.param(
            b'{"a":1}{"b":2} {"c":3},{"d":4}\n',
            [(0, 1, b'{"a":1}', "json"), (1, 1, b'{"b":2}', "json")]
            + [(2, 1, b'{"c":3}', "json"), (3, 1, b'{"d":4}', "json")],
            id="objects-back-to-back",
        ),
        pytest.param(
            b'{"a":1}}{"b":2}\n{"c":3}\n',
            [(0, 1, b'{"a":1}', "json"), (1, 1, b'}{"b":2}', "bad"), (2, 2, b'{"c":3}', "json")],
            id="invalid-json-makes-the-rest-of-its-line-one-bad-record",
        ),
        pytest.param(b"\xef\xbb\xbf[]\n{}\n", [(0, 2, b"{}", "json")], id="bom-and-empty-array"),
        pytest.param(
            b'{"m": "}{ inside a string"}\n',
            [(0, 1, b'{"m": "}{ inside a string"}', "json")],
            id="join-inside-a-string",
        ),
        pytest.param(
            b'{"a": 1}\n{"b": 2\n{"c": 3}\n',
            [(0, 1, b'{"a": 1}', "json"), (1, 2, b'{"b": 2', "bad"), (2, 3, b'{"c": 3}', "json")],
            id="truncated-line-after-the-first",
        ),
        pytest.param(
            b'[{"a": 1}, 5, "x", [1]]\n',
            [(0, 1, b'{"a": 1}', "json"), (1, 1, b"5", "bad"), (2, 1, b'"x"', "bad"), (3, 1, b"[1]", "bad")],
            id="array-elements-that-are-not-objects",
        ),
        pytest.param(
            b'[\n  {"a": 1},\n  {\n    "b": 2\n  }\n]\n',
            [(0, 2, b'{"a": 1}', "json"), (1, 3, b'{"b": 2}', "json")],
            id="pretty-printed-array-over-the-file",
        ),
        pytest.param(
            b'[\n{"a": 1},\n{"b": nope},\n{"c": 3}\n]\n',
            [(0, 2, b'{"a": 1}', "json"), (1, 3, b'{"b": nope},', "bad"), (2, 4, b'{"c": 3}', "json")],
            id="invalid-element-in-a-document-then-the-next-line",
        ),
        pytest.param(
            b'[{"a": 1},\n{"b": 2}',
            [(0, 1, b'{"a": 1}', "json"), (1, 2, b'{"b": 2}', "json")],
            id="document-array-left-open-at-the-end",
        ),
        pytest.param(
            b'{\n  "a": 1,\n  "b": [1,\n 2]\n}\n{"c": 3}\n',
            [(0, 1, b'{"a": 1,"b": [1,2]}', "json"), (1, 6, b'{"c": 3}', "json")],
            id="pretty-object-joined-onto-one-line",
        ),
        pytest.param(
            b'[\n{"a": 1},\n{"b":',
            [(0, 2, b'{"a": 1}', "json"), (1, 3, b'{"b":', "bad")],
            id="value-cut-at-the-end-of-the-member",
        ),
        pytest.param(b"[" * 5000 + b"\n", [(0, 1, b"[" * 4999, "bad")], id="nested-too-deeply"),
    ],
)
def test_json_lines_and_documents_become_records(
    data: bytes, expected: list[tuple[int, int, bytes, str]]
) -> None:
    """Arrays, back-to-back objects and documents give one record per object, ordinals in order."""
    assert records_of(data) == expected


def test_reasons_name_the_problem() -> None:
    """Bad pieces carry the JSON error and where it is."""
    splitter = JsonSplitter(1000)
    pieces = splitter.line(b'{"a": 1}', 1, True) + splitter.line(b'{"b": nope}', 2, False)
    assert [p.reason for p in pieces] == ["", "invalid JSON: Expecting value (line 2 column 7)"]
    assert (
        splitter.line(b'[{"a": 1}, 5', 3, False)[1].reason
        == "not a JSON object (an array element of type int)"
    )
    assert splitter.line(b'{"a": 1', 4, False)[0].reason == "JSON value not complete on its line"


def test_a_value_over_the_limit_in_a_document_is_reported_and_dropped() -> None:
    """An open value longer than max_record_bytes is one bad record (its head); reading goes on."""
    lines = (
        [b"[", b'{"a": "' + b"x" * 50 + b'",']
        + [b'"k%d": 1,' % i for i in range(20)]
        + [b'"z": 0},', b'{"b": 2}]']
    )
    got = records_of(b"\n".join(lines) + b"\n", limit=200)
    assert [(o, line, kind) for o, line, _, kind in got][0] == (0, 2, "bad")
    assert got[-1][2:] == (b'{"b": 2}', "json")


def test_ordinals_are_the_same_on_every_read() -> None:
    """Splitting is deterministic, so resuming after N records skips exactly those N; a value
    left open on a line other than the member's first is bad (no document there)."""
    data = b'[{"a": 1}, {"b": 2}]\n{"c": 3}{"d": 4}\n[\n{"e": 5}\n]\n'
    first = records_of(data)
    assert first == records_of(data)
    kinds = [(0, 1, "json"), (1, 1, "json"), (2, 2, "json"), (3, 2, "json"), (4, 3, "bad"), (5, 4, "json")]
    assert [(o, line, kind) for o, line, _, kind in first] == [*kinds, (6, 5, "bad")]


@pytest.mark.parametrize(
    ("line", "one"),
    [(b'{"a": 1}', True), (b'  {"a": 1}  ', True), (b'{"a": 1}{"b": 2}', False),
     (b'{"a": 1} {"b": 2}', False), (b'{"a": 1},{"b": 2}', False), (b'[{"a": 1}]', False),
     (b'{"a": 1', False)],
)  # fmt: skip
def test_is_one_object(line: bytes, one: bool) -> None:
    """Only a {...} line holding none of the joins is taken as one object unparsed."""
    assert is_one_object(line) is one


@pytest.mark.parametrize(
    ("text", "key", "value"),
    [
        (b'{"time": 1589813380000, "a": 1}', b"time", b"1589813380000"),
        (b'{"time":"2021-01-01T12:10:30.591Z"}', b"time", b"2021-01-01T12:10:30.591Z"),
        (b'{"msg": "\\"time\\": 5", "time" : -3}', b"time", b"-3"),
        (b'{"severity": "High"}', b"severity", b"High"),
        (b'{"a": 1}', b"time", None),
        (b'{"time": null}', b"time", None),
    ],
)
def test_raw_member(text: bytes, key: bytes, value: bytes | None) -> None:
    """A member's raw value is found without parsing; "key" inside a string is not a member."""
    assert raw_member(text, key) == value


def test_parse_object_reasons() -> None:
    """Invalid JSON and non-objects are ValueErrors with the reason."""
    assert parse_object('{"a": [1]}') == {"a": [1]}
    for text, reason in [
        ('{"a": nope}', "invalid JSON: Expecting value (column 7)"),
        ("[1]", "not a JSON object (a value of type list)"),
        ("[" * 100_000, "invalid JSON: nested too deeply"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_object(text)
        assert str(info.value) == reason


_TEXT = st.text(
    st.one_of(st.sampled_from('\\"\n\r\t|=é日\x00'), st.characters(blacklist_categories=["Cs"])), max_size=12
)


@PROPERTY
@given(
    event=st.builds(
        CefEvent, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, st.dictionaries(_TEXT, _TEXT, max_size=5)
    )
)
def test_cef_as_json_then_back_gives_the_same_event(event: CefEvent) -> None:
    """Any CEF event written as one JSON line reads back the same (quotes, control characters...),
    and orjson writes it exactly as json does."""
    text = cef_as_json(event)
    assert "\n" not in text
    assert cef_from_json(text) == event
    assert text == render_json(
        {**dict(zip(CEF_JSON_KEYS, event[:7], strict=True)), "extension": event.extension}
    )


def test_cef_as_json_with_bytes_kept_as_they_are() -> None:
    """Undecodable bytes kept (invalid_utf8: keep) are lone surrogates, which orjson refuses:
    json writes them."""
    event = CefEvent("0", "V", "P", "1", "id", "n", "5", {"msg": "caf\udce9"})
    assert cef_as_json(event) == render_json(
        {**dict(zip(CEF_JSON_KEYS, event[:7], strict=True)), "extension": event.extension}
    )


@PROPERTY
@given(
    lines=st.lists(
        st.binary(max_size=40) | st.sampled_from([b"[", b"]", b"{", b"}", b'{"a":', b"1},", b'"x"']),
        max_size=12,
    )
)
def test_no_input_crashes_the_splitter(lines: list[bytes]) -> None:
    """Any lines give pieces (json ones are objects) and never an exception."""
    splitter = JsonSplitter(100)
    pieces = []
    for number, line in enumerate(lines, start=1):
        pieces += splitter.line(line, number, number == 1)
    pieces += splitter.finish()
    for piece in pieces:
        if piece.kind == "json":
            assert isinstance(json.loads(piece.text.decode("utf-8", "surrogateescape")), dict)
        else:
            assert piece.reason


def test_records_keep_their_member() -> None:
    """Split records carry their member and line like any other record."""
    [record] = list(split_records([Member("x.log", io.BytesIO(b"[{}]\n"))], "s3://b/k"))
    assert record == Record(0, "x.log", 1, b"{}", "json", "")


# --- orjson where it reads what json reads ---------------------------------------------
_SCALARS = st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False)
_JSON_VALUES = st.recursive(
    _SCALARS | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=6,
)
# What orjson refuses or reads otherwise: big integers, NaN, lone surrogates, invalid UTF-8,
# NUL, duplicate names, values that are not objects, broken JSON.
_ODD_TEXTS = [
    b'{"a": 123456789012345678901234567890}', b'{"a": [18446744073709551616]}', b'{"a": NaN}',
    b'{"a": "\\ud800"}', b'{"a": "\xff"}', b'{"a": "x\\u0000y"}', b'{"a": "\\\\u0000"}', b'{"a": 1, "a": 2}',
    b'[1]', b'"x"', b'{"a": 1', b'{"a": 1e400}', b'{"a": -0}', b'{"a": 1.5, "b": {"c": 2}}',
]  # fmt: skip


def exactly(value: object) -> str:
    """A value with its types (1, 1.0 and True differ; so does the order of names)."""
    return repr(value)


@PROPERTY
@given(
    text=st.dictionaries(st.text(max_size=4), _JSON_VALUES, max_size=5).map(
        lambda d: json.dumps(d, ensure_ascii=False).encode()
    )
    | st.sampled_from(_ODD_TEXTS)
)
def test_read_object_reads_what_json_reads(text: bytes) -> None:
    """orjson's object is taken only where it is json's, type for type; plain means strings
    without NUL and integers only (and is said of every such text without a backslash);
    load_object always gives parse_object's answer."""
    event, plain = read_object(text)
    try:
        expected: object = parse_object(text.decode("utf-8", "surrogateescape"))
    except ValueError as exc:
        expected = exc
    if event is not None:
        assert exactly(event) == exactly(expected)
        simple = all(type(v) is int or (type(v) is str and "\0" not in v) for v in event.values())
        assert plain <= simple  # plain only if so; not always (a text "\\u0000" is left to the slow path)
        assert plain or not simple or b"\\" in text
    else:
        assert not plain
    if isinstance(expected, ValueError):
        with pytest.raises(ValueError, match=str(expected).split(" (")[0]):
            load_object(text)
    else:
        assert exactly(load_object(text)) == exactly(expected)


def test_read_object_takes_the_exporters_objects() -> None:
    """An exporter event (strings, integers) is read by orjson and plain; a big integer or a
    NUL is left to json."""
    assert read_object(b'{"event_type": "Security", "time": 1764314712000, "src_port": 443}') == (
        {"event_type": "Security", "time": 1764314712000, "src_port": 443},
        True,
    )
    assert read_object(b'{"a": 123456789012345678901234567890}') == (None, False)
    assert read_object(b'{"a": "x\\u0000"}') == ({"a": "x\0"}, False)
    assert read_object(b'{"a": true}') == ({"a": True}, False)


def test_read_object_takes_the_push_feeds_arrays_of_texts_numbers_and_booleans() -> None:
    """The Events Integration's arrays (app_stack, categories, custom_category_id) of strings,
    integers and booleans are read by orjson; an array holding a float or an object is not."""
    assert read_object(b'{"app_stack": ["Office365", "HTTPS"], "ids": [12, 7], "on": [true]}') == (
        {"app_stack": ["Office365", "HTTPS"], "ids": [12, 7], "on": [True]},
        False,
    )
    assert read_object(b'{"a": [1, 2.5]}') == (None, False)
    assert read_object(b'{"a": [{"b": 1}]}') == (None, False)


def test_without_orjson_json_reads_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonevents, "orjson", None)
    assert read_object(b'{"a": 1}') == (None, False)
    assert load_object(b'{"a": 1}') == {"a": 1}


def test_a_number_too_long_for_int_is_a_bad_record_not_a_crash() -> None:
    """json's int() refuses over 4,300 digits: that value is a bad record at its place, with
    the reason; reading goes on with the next line (as after invalid JSON)."""
    big = b"1" * 5000
    found = records_of(b'[{"a": ' + big + b'},\n{"b": 2}]\n{"c": 3}\n')
    assert [(line, kind) for _, line, _, kind in found] == [(1, "bad"), (2, "json"), (3, "json")]
    reason = parse_object_reason('{"a": ' + "1" * 5000 + "}")
    assert reason == "JSON number too long to read (over 4,300 digits)"


def parse_object_reason(text: str) -> str:
    with pytest.raises(ValueError) as info:
        parse_object(text)
    return str(info.value)
