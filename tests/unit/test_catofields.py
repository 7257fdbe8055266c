"""Unit tests for forwarder.catofields: Cato's JSON and CEF events mapped to CEF and LEEF."""

from __future__ import annotations

import calendar

from forwarder import cef, leef
from forwarder.catofields import (
    DEVTIME_FORMAT,
    cef_from_json,
    devtime,
    json_event_time,
    leef_from_cef,
    leef_from_json,
)

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
