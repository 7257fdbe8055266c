"""Unit tests for forwarder.formats.catofields: Cato's JSON and CEF events mapped to CEF and LEEF."""

from __future__ import annotations

import calendar
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from forwarder.formats import cef, leef, renderers, times
from forwarder.formats.catofields import (
    DEVTIME_FORMAT,
    cef_from_json,
    devtime,
    json_event_time,
    leef_from_cef,
    leef_from_json,
)
from forwarder.formats.renderers import CefLeefRenderer, JsonRenderer
from forwarder.formats.severity import leef_severity

PROPERTY = settings(
    database=None, max_examples=300, deadline=None, phases=[Phase.explicit, Phase.generate, Phase.shrink]
)
NOW = 1764314712.5

T = calendar.timegm((2020, 5, 18, 14, 49, 40, 0, 0, 0)) * 1000 + 123
JSON_EVENT = {
    "event_type": "Security",
    "event_sub_type": "Internet Firewall",
    "severity": "High",
    "time": T,
    "src_ip": "10.0.0.1",
    "dest_ip": "93.184.216.34",
    "src_port": 51000,
    "dest_port": 443,
    "ip_protocol": "TCP",
    "user_name": "jörg.müller@example.de",
    "action": "Block",
    "rule": 'rule "7" \\ =|',
    "site name": "Zürich HQ",
    "flags": {"a": [1, True]},
    "risk": 0.5,
    "nothing": None,
    "src": "collides with the mapped src",
}


def test_json_to_cef_mapping() -> None:
    """The documented keys: class ID event_type, Name sub-type, rt time, src/dst/spt/dpt/proto/suser/act."""
    event = cef_from_json(JSON_EVENT)
    assert event[:7] == (
        "0",
        "Cato Networks",
        "Cato SASE Platform",
        "1.0",
        "Security",
        "Internet Firewall",
        "High",
    )
    assert event.extension == {
        "rt": str(T),
        "src": "10.0.0.1",
        "dst": "93.184.216.34",
        "spt": "51000",
        "dpt": "443",
        "proto": "TCP",
        "suser": "jörg.müller@example.de",
        "act": "Block",
        "rule": 'rule "7" \\ =|',
        "site_name": "Zürich HQ",
        "flags": '{"a":[1,true]}',
        "risk": "0.5",
        "cato_src": "collides with the mapped src",
    }
    assert cef.parse(cef.render(event)) == event


def test_json_to_leef_mapping() -> None:
    """devTime/devTimeFormat, sev from the severity word, cat = sub-type, QRadar's key names."""
    event = leef_from_json(JSON_EVENT)
    assert event[:4] == ("Cato Networks", "Cato SASE Platform", "1.0", "Security")
    attributes = event.attributes
    assert (attributes["devTime"], attributes["devTimeFormat"]) == (
        "2020-05-18T14:49:40.123+0000",
        DEVTIME_FORMAT,
    )
    assert attributes["sev"] == "8"
    assert attributes["cat"] == "Internet Firewall"
    assert (attributes["src"], attributes["dst"], attributes["srcPort"], attributes["dstPort"]) == (
        "10.0.0.1", "93.184.216.34", "51000", "443"
    )  # fmt: skip
    assert (attributes["usrName"], attributes["proto"], attributes["action"]) == (
        "jörg.müller@example.de",
        "TCP",
        "Block",
    )
    assert attributes["cato_src"] == "collides with the mapped src"
    assert leef.parse(leef.render(event)) == event


def test_cef_to_leef_mapping() -> None:
    """Header kept (class ID as EventID), Name as name, Severity as sev, rt as devTime, keys renamed."""
    source = cef.parse(
        "CEF:0|Cato Networks||1.0|Security|Block \\| default|7|rt=Mon May 18 14:49:40 UTC 2020 "
        "spt=1 dpt=2 suser=u smac=m1 dmac=m2 cs1Label=Site cs1=Zürich msg=a\\=b\\nc"
    )
    event = leef_from_cef(source)
    assert event[:4] == ("Cato Networks", "", "1.0", "Security")
    assert event.attributes == {
        "devTime": "2020-05-18T14:49:40.000+0000",
        "devTimeFormat": DEVTIME_FORMAT,
        "sev": "7",
        "name": "Block | default",
        "srcPort": "1",
        "dstPort": "2",
        "usrName": "u",
        "srcMAC": "m1",
        "dstMAC": "m2",
        "cs1Label": "Site",
        "cs1": "Zürich",
        "msg": "a=b\nc",
    }


def test_unmappable_values_are_kept_under_their_own_names() -> None:
    """A time that does not parse stays as rt; a severity word LEEF has no number for stays too."""
    event = leef_from_cef(cef.parse("CEF:0|V|P|1|id|n|Unknown|rt=whenever x=1"))
    assert event.attributes == {"name": "n", "severity": "Unknown", "rt": "whenever", "x": "1"}
    assert "rt" not in cef_from_json({"time": "whenever"}).extension
    assert cef_from_json({"time": "whenever"}).extension == {"time": "whenever"}


def test_json_time_fields() -> None:
    """time first, else creationTime; epoch ms or ISO 8601; booleans and nulls are no time."""
    assert json_event_time({"time": 5, "creationTime": 6}) == ("time", 5)
    assert json_event_time({"time": None, "creationTime": "2021-01-01T00:00:00Z"}) == (
        "creationTime",
        1609459200000,
    )
    assert json_event_time({"time": True}) is None
    assert devtime(0) == "1970-01-01T00:00:00.000+0000"


# --- the fast renderer: what the general functions write, whatever the event -------------
# Names that meet the mapping tables, collide with the keys they write, or need cleaning.
_NAMES = st.sampled_from(
    ["event_type", "event_sub_type", "severity", "time", "creationTime", "src_ip", "dest_port", "url",
     "src", "rt", "cato_src", "devTime", "sev", "cat", "name", "site name", "x(y)", "a%s", "", "é"]
) | st.text(max_size=4)  # fmt: skip
# Text holding every character that CEF or LEEF escapes, the LEEF delimiters and NUL.
_TEXT = st.text(alphabet=st.sampled_from("ab =\\\r\n\t^~\x1f\x00|é東%()s"), max_size=8)
_VALUES = (
    _TEXT
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([1589813380123, 0, "2020-05-18T14:49:40Z", "High", "very high", "7", "", "Event"])
    | st.none()
    | st.booleans()
    | st.floats()
    | st.lists(st.integers() | _TEXT, max_size=2)
    | st.dictionaries(_TEXT, st.integers(), max_size=2)
)
_EVENTS = st.dictionaries(_NAMES, _VALUES, max_size=8)


def general(target: str, event: dict[str, Any]) -> tuple[str, int | None]:
    found = json_event_time(event, NOW)
    if target == "cef":
        return cef.render(cef_from_json(event, NOW)), found[1] if found else None
    return leef.render(leef_from_json(event, NOW)), found[1] if found else None


def is_plain(event: dict[str, Any]) -> bool:
    """What jsonevents.read_object calls plain: strings (without NUL) and integers only."""
    return all(type(v) is int or (type(v) is str and "\0" not in v) for v in event.values())


@PROPERTY
@given(events=st.lists(_EVENTS, min_size=1, max_size=4), target=st.sampled_from(["cef", "leef"]))
def test_json_renderer_writes_what_the_general_functions_write(
    events: list[dict[str, Any]], target: str
) -> None:
    """Byte for byte, on first sight of a field list and from the caches after, plain or not."""
    renderer = JsonRenderer(target, clock=lambda: NOW)
    for event in events + events:
        expected = general(target, event)
        assert renderer.line(event) == expected
        if is_plain(event):
            assert renderer.line(event, plain=True) == expected


def test_json_renderer_shapes_follow_the_field_order() -> None:
    """The same fields in another order are another shape: each event keeps its own order."""
    renderer = JsonRenderer("cef", clock=lambda: NOW)
    first = {"time": 1, "b": "x", "a": "y"}
    second = {"a": "y", "time": 1, "b": "x"}
    assert renderer.line(first, plain=True)[0].endswith("|rt=1 b=x a=y")
    assert renderer.line(second, plain=True)[0].endswith("|rt=1 a=y b=x")


def test_json_renderer_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit a cache is emptied and filled again; lines stay right."""
    monkeypatch.setattr(renderers, "_CACHED", 3)
    for target in ("cef", "leef"):
        renderer = JsonRenderer(target, clock=lambda: NOW)
        events = [
            {"event_type": f"T{i}", "severity": f"{i % 11}", "time": T + i * 1000, f"f{i}": "v=1"}
            for i in range(10)
        ]
        for event in events + events:
            assert renderer.line(event, plain=True) == general(target, event)
        assert max(len(renderer._shapes), len(renderer._cef_heads), len(renderer._leef_heads)) <= 3


def test_json_renderer_escapes_a_real_event_in_one_go() -> None:
    """A URL's "=" and a path's backslashes: escaped in the values only, never in the keys
    (LEEF doubles only the backslash that would start an escape: "\\n", not "\\U")."""
    event = {"event_type": "Security", "time": T, "url": "https://h/?a=1&b=2", "path": "C:\\Users\\new"}
    event["n"] = 3
    cef_line, _ = JsonRenderer("cef").line(event, plain=True)
    assert cef_line.endswith(f"|rt={T} request=https://h/?a\\=1&b\\=2 path=C:\\\\Users\\\\new n=3")
    leef_line, _ = JsonRenderer("leef").line(event, plain=True)
    assert leef_line.endswith("\turl=https://h/?a=1&b=2\tpath=C:\\Users\\\\new\tn=3")
    assert leef.parse(leef_line).attributes["path"] == "C:\\Users\\new"


@pytest.mark.parametrize("target", ["cef", "leef"])
def test_a_time_beyond_year_9999_is_no_time(target: str) -> None:
    """Found by the property above: such a time made LEEF's devTime overflow (a crash); it
    is now kept as a field like any time that does not parse."""
    event = {"event_type": "Security", "time": 67767976233532800000, "creationTime": T}
    assert json_event_time(event) == ("creationTime", T)
    line, moment = JsonRenderer(target, clock=lambda: NOW).line(event, plain=True)
    assert (line, moment) == general(target, event)
    assert moment == T
    assert "time=67767976233532800000" in line
    assert json_event_time({"time": -1}) is None
    assert times.parse_time("67767976233532800000") is None


def test_leef_sev_stays_within_1_to_10() -> None:
    """LEEF's sev is 1-10: CEF's 0 (and anything above 10) is brought within it."""
    assert [leef_severity(v) for v in ("0", "7", "007", "10", "11", "High", "²", "x")] == [
        "1", "7", "7", "10", "10", "8", None, None
    ]  # fmt: skip


# --- CEF to LEEF: the same, from CEF lines -------------------------------------------------
_CEF_KEYS = st.sampled_from(
    ["rt", "end", "src", "spt", "srcPort", "name", "sev", "devTime", "cs1", "msg", "x"]
)
_CEF_VALUES = _TEXT.filter(lambda v: v.strip() == v) | st.sampled_from(
    ["1589813380123", "Mon May 18 14:49:40 UTC 2020", "67767976233532800000", "soon", ""]
)


@st.composite
def _cef_lines(draw: st.DrawFn) -> str:
    """CEF lines as cef.render writes them (every escape), some with a key twice, some broken."""
    severity = draw(st.sampled_from(["0", "5", "10", "11", "High", "Very-High", "Unknown", "", "weird|\\"]))
    pairs = draw(st.lists(st.tuples(_CEF_KEYS, _CEF_VALUES), max_size=6))
    header = [draw(_TEXT) for _ in range(5)]
    line = cef.render(cef.CefEvent("0", *header, severity, {}))
    line += " ".join(f"{k}={cef.escape_value(v)}" for k, v in pairs)  # a key may come twice
    broken = [line[:-3], "CEF:x|" + line[6:]]
    return line if draw(st.booleans()) else draw(st.sampled_from(broken))


def general_cef_leef(text: str) -> tuple[str, str, int | None] | str:
    try:
        event = cef.parse(text)
    except cef.CefError as exc:
        return str(exc)
    return leef.render(leef_from_cef(event, NOW)), event.severity, times.event_time(event, NOW)


@PROPERTY
@given(lines=st.lists(_cef_lines(), min_size=1, max_size=4))
def test_cef_leef_renderer_writes_what_the_general_functions_write(lines: list[str]) -> None:
    """Byte for byte (and the same refusals), on first sight of a key list and from the caches."""
    renderer = CefLeefRenderer(clock=lambda: NOW)
    for text in lines + lines:
        try:
            found: tuple[str, str, int | None] | str = renderer.line(text)
        except cef.CefError as exc:
            found = str(exc)
        assert found == general_cef_leef(text)


def test_cef_leef_renderer_on_a_cato_event() -> None:
    """rt becomes devTime, spt srcPort, the Severity number sev; escapes read and rewritten."""
    text = "CEF:0|Cato Networks|Cato SASE Platform|1.0|Security|IPS|7|"
    text += "rt=1589813380123 spt=443 msg=a\\=b c:\\\\new"
    line, field, moment = CefLeefRenderer().line(text)
    assert (field, moment) == ("7", 1589813380123)
    assert line == (
        "LEEF:2.0|Cato Networks|Cato SASE Platform|1.0|Security|x09|devTime=2020-05-18T14:49:40.123+0000\t"
        "devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ\tsev=7\tname=IPS\tsrcPort=443\tmsg=a=b c:\\\\new"
    )
