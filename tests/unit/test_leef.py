"""Unit tests for forwarder.formats.leef: LEEF 2.0 written for QRadar and read back."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.formats import leef
from forwarder.formats.leef import LeefError, LeefEvent

PROPERTY = settings(
    database=None, max_examples=300, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)


def event(**attributes: str) -> LeefEvent:
    return LeefEvent("Cato Networks", "Cato SASE Platform", "1.0", "Security", attributes)


def test_render_exact_bytes() -> None:
    """Header pipe-separated with the delimiter written x09; attributes joined by a tab."""
    line = leef.render(event(src="10.0.0.1", usrName="jörg", msg="a=b|c"))
    assert (
        line
        == "LEEF:2.0|Cato Networks|Cato SASE Platform|1.0|Security|x09|src=10.0.0.1\tusrName=jörg\tmsg=a=b|c"
    )


@pytest.mark.parametrize(
    ("values", "delimiter", "written"),
    [
        ({"a": "x"}, "\t", "x09"),
        ({"a": "tab\there"}, "^", "^"),
        ({"a": "\t^"}, "~", "~"),
        ({"a": "\t^~"}, "\x1f", "x1F"),
    ],
)
def test_the_delimiter_is_one_no_value_holds(values: dict[str, str], delimiter: str, written: str) -> None:
    """A tab unless a value holds one, then ^, ~ or US: LEEF has no escape for its delimiter."""
    assert leef.choose_delimiter(values) == (delimiter, written)
    line = leef.render(event(**values))
    assert line.split("|")[5] == written
    assert leef.parse(line).attributes == values


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("C:\\dir\\file", "C:\\dir\\file"),  # a backslash before no escape letter stays single
        ("C:\\new", "C:\\\\new"),  # ... but before n (read as \n) it is doubled
        ("ends\\", "ends\\\\"),
        ("line1\nline2\r", "line1\\nline2\\r"),
        ("back\\\nslash", "back\\\\\\nslash"),
        ("a=b", "a=b"),  # "=" needs no escape: a key ends at its first "="
    ],
)
def test_value_escaping(value: str, written: str) -> None:
    """LF/CR as \\n/\\r; a backslash doubled only where it would start an escape."""
    assert leef.escape_value(value, "^") == written
    assert leef.unescape_value(written) == value


def test_all_four_delimiters_in_values_escape_tabs() -> None:
    """When every candidate occurs, the delimiter is a tab and tabs in values are written \\t."""
    values = {"a": "\t^~\x1f"}
    line = leef.render(event(**values))
    assert "\\t^~\x1f" in line
    assert leef.parse(line).attributes == values


def test_header_fields_escape_pipe_and_backslash() -> None:
    """| and \\ in header fields are escaped as in CEF; CR/LF there become spaces."""
    line = leef.render(LeefEvent("V|x", "P\\y", "1\n2", "id", {}))
    assert line == "LEEF:2.0|V\\|x|P\\\\y|1 2|id|x09|"
    assert leef.parse(line) == LeefEvent("V|x", "P\\y", "1 2", "id", {})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^sev=5",
            {"src": "10.0.1.8", "dst": "10.0.0.5", "sev": "5"},
        ),
        ("LEEF:2.0|V|P|1|41|0x5E|a=1^b=2", {"a": "1", "b": "2"}),
        ("LEEF:2.0|V|P|1|41||a=1\tb=2", {"a": "1", "b": "2"}),
        ("LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=1\tdst=2\t", {"src": "1", "dst": "2"}),
        ("LEEF:2.0|V|P|1|41|x09|name=Firstname Lastname\tx=a=b", {"name": "Firstname Lastname", "x": "a=b"}),
    ],
)
def test_parse(line: str, expected: dict[str, str]) -> None:
    """IBM's examples: LEEF 1.0 (tab), 2.0 with ^, hex (0x5E), empty (tab) delimiters."""
    assert leef.parse(line).attributes == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("LEEF:2.0|V|P|1", "LEEF header has 3 of its 6 '|'-separated fields"),
        ("LEEF:2.0|V|P|1|41|ab|x=1", "LEEF delimiter is neither one character nor a hex value ('ab')"),
        ("LEEF:2.0|V|P|1|41|^|novalue", "LEEF attribute without '=' ('novalue')"),
        ("CEF:0|V|P|1|41|n|5|", "not LEEF (does not start with LEEF:)"),
    ],
)
def test_malformed(line: str, reason: str) -> None:
    """What is not LEEF raises LeefError with the reason."""
    with pytest.raises(LeefError) as info:
        leef.parse(line)
    assert str(info.value) == reason


_HEADER_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=10)
_VALUE = st.text(
    st.one_of(st.sampled_from("\\\t^~\x1f=|\r\nnrt é"), st.characters(blacklist_categories=["Cs"])),
    max_size=16,
)
EVENTS = st.builds(
    LeefEvent,
    _HEADER_TEXT,
    _HEADER_TEXT,
    _HEADER_TEXT,
    _HEADER_TEXT,
    st.dictionaries(st.from_regex(r"[A-Za-z0-9_.\-\[\]]{1,8}", fullmatch=True), _VALUE, max_size=6),
)


@PROPERTY
@given(value=EVENTS)
def test_render_then_parse_gives_the_same_event(value: LeefEvent) -> None:
    """Whatever the values (delimiters, backslashes, line breaks): parse(render(e)) == e."""
    assert leef.parse(leef.render(value)) == value


@PROPERTY
@given(text=st.text(st.sampled_from("LEF:2.0|^x09=\\\t") | st.characters(), max_size=60))
def test_no_input_crashes_the_parser(text: str) -> None:
    """Any text parses or raises LeefError."""
    with contextlib.suppress(LeefError):
        leef.parse("LEEF:" + text)
