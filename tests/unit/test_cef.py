"""Unit tests for forwarder.formats.cef: CEF parsed and written to the letter (rev 25)."""

from __future__ import annotations

import calendar
import contextlib

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.formats import cef, times
from forwarder.formats.cef import CefError, CefEvent

# No "explain" phase: it imports libcst, whose DeprecationWarning the warnings-as-errors
# setting would turn into an internal error that hides the real failure.
PROPERTY = settings(
    database=None, max_examples=300, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)


def ms(year: int, month: int, day: int, hour: int, minute: int, second: int, millis: int = 0) -> int:
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) * 1000 + millis


HEADER = "CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|Block|7|"


@pytest.mark.parametrize(
    ("line", "header", "extension"),
    [
        pytest.param(
            HEADER + "src=10.0.0.1 dst=2.2.2.2",
            ("0", "Cato Networks", "Cato SASE Platform", "1.0", "Security", "Block", "7"),
            {"src": "10.0.0.1", "dst": "2.2.2.2"},
            id="plain",
        ),
        pytest.param(
            r"CEF:0|Cato Networks||1.0|Security|Pipe \| and backslash \\ in header|7|",
            ("0", "Cato Networks", "", "1.0", "Security", "Pipe | and backslash \\ in header", "7"),
            {},
            id="header-escapes-empty-product-no-extension",
        ),
        pytest.param(
            r"CEF:0|a\\|b|c|d|e|5|x=1",
            ("0", "a\\", "b", "c", "d", "e", "5"),
            {"x": "1"},
            id="escaped-backslash-before-a-real-pipe",
        ),
        pytest.param(
            r"CEF:0|a\\\|b|c|d|e|f|5|x=1",
            ("0", "a\\|b", "c", "d", "e", "f", "5"),
            {"x": "1"},
            id="escaped-backslash-then-escaped-pipe",
        ),
        pytest.param(
            HEADER + r"msg=equals \= backslash \\ newline \n return \r end",
            None,
            {"msg": "equals = backslash \\ newline \n return \r end"},
            id="extension-escapes",
        ),
        pytest.param(
            HEADER + "msg=spaces and a bare | pipe cs1Label=Site cs1=Zürich HQ 東京",
            None,
            {"msg": "spaces and a bare | pipe", "cs1Label": "Site", "cs1": "Zürich HQ 東京"},
            id="values-with-spaces-and-pipes",
        ),
        pytest.param(
            HEADER + r"path=C:\\dir\\ next=2",
            None,
            {"path": "C:\\dir\\", "next": "2"},
            id="value-ending-in-a-backslash",
        ),
        pytest.param(
            HEADER + "tunnel_device_type=Windows internalType=DISCONNECTED ad.user[0]=x",
            None,
            {"tunnel_device_type": "Windows", "internalType": "DISCONNECTED", "ad.user[0]": "x"},
            id="custom-keys",
        ),
        pytest.param(
            HEADER + "request=https://x.example/?a=b&c=d act=Block",
            None,
            {"request": "https://x.example/?a=b&c=d", "act": "Block"},
            id="unescaped-equals-inside-a-value-kept",
        ),
        pytest.param(
            HEADER + r"msg=a \| b \t c",
            None,
            {"msg": "a | b \\t c"},
            id="needless-pipe-escape-read-unknown-escape-kept",
        ),
        pytest.param(
            HEADER + " a=1  b= c=x ",
            None,
            {"a": "1 ", "b": "", "c": "x "},
            id="spaces-kept-in-values-leading-space-skipped",
        ),
        pytest.param(HEADER + "a=1 a=2", None, {"a": "1"}, id="duplicate-key-first-wins"),
        pytest.param(
            "CEF:1|V|P|2|id|n|Very-High|rt=Mon May 18 14:49:40 UTC 2020 n=1",
            ("1", "V", "P", "2", "id", "n", "Very-High"),
            {"rt": "Mon May 18 14:49:40 UTC 2020", "n": "1"},
            id="cato-date-with-spaces",
        ),
    ],
)
def test_parse(line: str, header: tuple[str, ...] | None, extension: dict[str, str]) -> None:
    """Tricky CEF lines give exactly these header fields and extension pairs."""
    event = cef.parse(line)
    if header is not None:
        assert tuple(event[:7]) == header
    assert event.extension == extension
    assert list(event.extension) == list(extension)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("CEF:0|Cato|SASE|1.0|Security|Block", "CEF header has 5 of its 7 '|'-separated fields"),
        (r"CEF:0|a|b|c|d|e\|7|x=1", "CEF header has 6 of its 7 '|'-separated fields"),
        ("CEF:zero|a|b|c|d|e|7|x=1", "CEF version is not a number ('zero')"),
        ("CEF:0|a|b|c|d|e|7|garbage x=1", "CEF extension: text before the first key=value ('garbage')"),
        ("CEF:0|a|b|c|d|e|7|just text", "CEF extension: text before the first key=value ('just text')"),
        ("LEEF:2.0|a|b|c|d|^|x=1", "not CEF (does not start with CEF:)"),
    ],
)
def test_malformed_lines_are_errors_with_a_reason(line: str, reason: str) -> None:
    """A line that is not CEF raises CefError saying why (the dead-letter reason)."""
    with pytest.raises(CefError) as info:
        cef.parse(line)
    assert str(info.value) == reason


def test_render_escapes_header_and_extension_differently() -> None:
    """Header: \\ and | escaped (= not); extension: \\ and = escaped, CR/LF as \\r \\n (| not)."""
    event = CefEvent("0", "V|x", "P\\y", "1.0", "a=b", "N", "5", {"msg": "a=b|c\\d\r\ne", "k": ""})
    assert cef.render(event) == "CEF:0|V\\|x|P\\\\y|1.0|a=b|N|5|msg=a\\=b|c\\\\d\\r\\ne k="


# --- properties -------------------------------------------------------------------------

_HEADER_TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=12)
_VALUE = st.text(
    st.one_of(st.sampled_from("\\=|\r\n ab=é日"), st.characters(blacklist_categories=["Cs"])), max_size=20
)
_KEY = st.from_regex(r"[A-Za-z0-9_.\-\[\]]{1,8}", fullmatch=True)
EVENTS = st.builds(
    CefEvent,
    st.sampled_from(["0", "1"]),
    _HEADER_TEXT,
    _HEADER_TEXT,
    _HEADER_TEXT,
    _HEADER_TEXT,
    _HEADER_TEXT,
    st.sampled_from(["0", "3", "10", "Low", "Very-High", "Unknown", ""]) | _HEADER_TEXT,
    st.dictionaries(_KEY, _VALUE, max_size=6),
)


@PROPERTY
@given(event=EVENTS)
def test_render_then_parse_gives_the_same_event(event: CefEvent) -> None:
    """Whatever the header text (without CR/LF) and values (any), parse(render(e)) == e."""
    assert cef.parse(cef.render(event)) == event


@PROPERTY
@given(event=EVENTS, key=st.sampled_from(["rt", "end"]))
def test_the_cheap_time_scan_agrees_with_the_parser(event: CefEvent, key: str) -> None:
    """raw_time_value finds the rt/end value the full parser finds (escapes aside)."""
    extension = {**event.extension, key: "1589813380000"}
    text = cef.render(event._replace(extension=extension))
    fields, raw_extension = cef.split_header(text)
    found = [value.decode() for value in times.raw_time_values(raw_extension.encode())]
    parsed = cef.parse(text).extension
    assert found == [parsed[k] for k in ("rt", "end") if parsed.get(k)]


@PROPERTY
@given(text=st.text(st.sampled_from("CEF:0|\\= abrt\n") | st.characters(), max_size=80))
def test_no_input_crashes_the_parser(text: str) -> None:
    """Any text either parses or raises CefError: nothing else."""
    with contextlib.suppress(CefError):
        cef.parse("CEF:" + text)
