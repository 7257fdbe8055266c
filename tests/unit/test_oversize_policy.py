"""Unit tests for forwarder.formats.oversize: truncation and splitting on exact bytes, at UTF-8 boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from forwarder.config import DEFAULT_MAX_MESSAGE_BYTES
from forwarder.formats.oversize import EVENT_STARTS, fit, header_length, split, truncate, utf8_cut
from forwarder.formats.syslog import rfc3164_prefix, rfc3164_timestamp, rfc5424_prefix
from forwarder.transports.datagram import UDP_MAX_PAYLOAD

HEADER = b"<134>1 2026-11-28T07:25:12.123Z fwd01 cato - - - "
# "Zürich €😀": ü is 2 bytes (C3 BC), € 3 (E2 82 AC), 😀 4 (F0 9F 98 80).
TEXT = "Zürich €😀".encode()


@pytest.mark.parametrize(
    ("end", "cut"),
    [
        (0, 0), (1, 1),
        (2, 1), (3, 3),  # inside ü: back to its lead byte; after it: as asked
        (8, 8), (9, 8), (10, 8), (11, 11),  # inside €
        (12, 11), (13, 11), (14, 11), (15, 15),  # inside 😀; 15 = the end
        (99, 15),
    ],
)  # fmt: skip
def test_utf8_cut_never_falls_inside_a_character(end: int, cut: int) -> None:
    """A cut inside a 2-, 3- or 4-byte UTF-8 sequence moves back to the sequence's first byte."""
    assert utf8_cut(TEXT, end) == cut


@pytest.mark.parametrize(
    ("data", "end", "cut"),
    [
        (b"ab\x80\x80\x80\x80cd", 4, 4),  # stray continuation bytes: no lead byte in reach
        (b"caf\xe9 au lait", 4, 4),  # Latin-1 "é" followed by ASCII: not a sequence
        (b"ab\xe2\x82\xac", 4, 2),  # a 3-byte sequence the cut would split: moved back
        (b"ab\xe2\x82cd", 4, 4),  # a 3-byte sequence broken off anyway: cut as asked
    ],
)
def test_utf8_cut_leaves_bytes_that_are_not_utf8_where_they_are(data: bytes, end: int, cut: int) -> None:
    """Bytes that are not UTF-8 are cut at the limit; only a sequence that would be split moves the cut."""
    assert utf8_cut(data, end) == cut


def test_truncate_cuts_at_the_last_whole_character_within_the_limit() -> None:
    """Truncation keeps the header and the event's first bytes, up to a whole character."""
    message = HEADER + TEXT
    head = len(HEADER)
    assert truncate(message, head + 15) == message
    assert truncate(message, head + 14) == HEADER + "Zürich €".encode()
    assert truncate(message, head + 11) == HEADER + "Zürich €".encode()
    assert truncate(message, head + 10) == HEADER + "Zürich ".encode()
    assert truncate(message, head + 2) == HEADER + b"Z"


def test_split_sends_the_event_in_pieces_each_with_the_header() -> None:
    """Pieces carry the same header and consecutive parts of the event, cut at character boundaries."""
    event = b"CEF:0|Cato|SASE|1|x|y|5|msg=" + "é".encode() * 20
    message = HEADER + event
    pieces = split(message, len(HEADER), len(HEADER) + 20)
    assert pieces == [
        HEADER + b"CEF:0|Cato|SASE|1|x|",
        HEADER + "y|5|msg=éééééé".encode(),
        HEADER + "éééééééééé".encode(),
        HEADER + "éééé".encode(),
    ]
    assert b"".join(piece[len(HEADER) :] for piece in pieces) == event


def test_split_moves_a_cut_that_would_start_a_piece_like_an_event() -> None:
    """A piece after the first never starts with CEF:, {, [ or white space: the cut moves back."""
    event = b"CEF:0|a|b|1|x|y|5|msg=" + b"z" * 8 + b" {[CEF:0|tail"
    pieces = split(event, 0, 30)  # no header: the cut at 30 would leave " {[CEF:..."
    assert pieces == [b"CEF:0|a|b|1|x|y|5|msg=zzzzzzz", b"z {[CEF:0|tail"]
    for piece in pieces[1:]:
        assert not piece.startswith(EVENT_STARTS)


def test_split_cuts_where_it_must_in_a_long_run_of_event_starts() -> None:
    """A run of such bytes longer than half a piece cannot be avoided: the cut stays at the limit."""
    event = b"CEF:0|" + b"{" * 100
    pieces = split(event, 0, 40)
    assert [len(p) for p in pieces] == [40, 40, 26]
    assert b"".join(pieces) == event


def test_split_of_a_header_only_message_that_cannot_make_headway_truncates() -> None:
    """With almost no room beside the header a split would not progress: it truncates instead."""
    message = HEADER + b"CEF:0|" + b"x" * 100
    assert split(message, len(HEADER), len(HEADER) + 4) == [message[: len(HEADER) + 4]]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("truncate", [HEADER + b"CEF:0|" + b"x" * 10]),
        ("split", [HEADER + b"CEF:0|" + b"x" * 10, HEADER + b"x" * 10]),
        ("drop", []),
    ],
)
def test_fit_applies_the_policy_only_to_messages_over_the_limit(policy: str, expected: list[bytes]) -> None:
    """fit() leaves a message that fits alone, and truncates, splits or drops one that does not."""
    limit = len(HEADER) + 16
    assert fit(HEADER + b"CEF:0|x", len(HEADER), limit, policy) == [HEADER + b"CEF:0|x"]
    assert fit(HEADER + b"CEF:0|" + b"x" * 20, len(HEADER), limit, policy) == expected


def test_split_without_a_known_header_truncates() -> None:
    """When the header cannot be told apart (head None), a split would garble it: it truncates."""
    message = HEADER + b"CEF:0|" + b"x" * 100
    assert fit(message, None, len(HEADER) + 20, "split") == [message[: len(HEADER) + 20]]


@pytest.mark.parametrize(
    ("header", "head"),
    [
        ("rfc5424", b"<134>" + rfc5424_prefix("2026-11-28T07:25:12.123Z", "fwd01.example.com", "cato")),
        ("rfc5424", b"<11>" + rfc5424_prefix("2026-11-28T07:25:12.123Z", "", "my app")),
        ("rfc3164", b"<134>" + rfc3164_prefix(rfc3164_timestamp(1764314712.0), "fwd01", "cato")),
        ("rfc3164", b"<3>" + rfc3164_prefix(rfc3164_timestamp(1762585512.0), "h", "x: y")),  # Nov  8
        ("none", b""),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        b"CEF:0|Cato Networks|SASE|1|x|name: with spaces|5|msg=a b: c",
        b"LEEF:2.0|Cato Networks|SASE|1|x|x09|cat=a b: c",  # what output.encoding: leef sends
        b'{"event": "a b: c"}',
    ],
)
def test_header_length_finds_the_header_whatever_the_body(header: str, head: bytes, body: bytes) -> None:
    """The header's length is read from the message itself: spaces or ": " in the body do not matter."""
    assert header_length(head + body, header) == len(head)


def test_header_length_of_a_message_without_its_header_is_none() -> None:
    """A message that does not start with the configured header gives None (a split then truncates)."""
    assert header_length(b"CEF:0|a|b", "rfc5424") is None
    assert header_length(b"CEF:0|a|b", "rfc3164") is None


def test_udp_default_limit_is_what_a_datagram_carries() -> None:
    """The udp default of output.max_message_bytes is the transport's hard limit, 65,507."""
    assert DEFAULT_MAX_MESSAGE_BYTES["udp"] == UDP_MAX_PAYLOAD == 65507


@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300),
    room=st.integers(min_value=16, max_value=120),
)
def test_split_pieces_fit_and_join_back_into_the_event(text: str, room: int) -> None:
    """For any UTF-8 event: every piece fits, decodes on its own, and the pieces join into the event."""
    event = b"CEF:0|" + text.encode()
    pieces = split(HEADER + event, len(HEADER), len(HEADER) + room)
    assert all(len(piece) <= len(HEADER) + room and piece.startswith(HEADER) for piece in pieces)
    bodies = [piece[len(HEADER) :] for piece in pieces]
    assert b"".join(bodies) == event
    for body in bodies:
        body.decode("utf-8")  # never cut inside a character
    assert all(body for body in bodies)


@given(
    text=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200).map(str.encode),
    limit=st.integers(min_value=0, max_value=250),
)
def test_truncate_is_the_longest_whole_character_prefix(text: bytes, limit: int) -> None:
    """Truncation gives a prefix within the limit that decodes, and no longer one would."""
    cut = truncate(text, limit)
    assert text.startswith(cut) and (len(cut) <= limit or cut == text)
    cut.decode("utf-8")
    for longer in range(len(cut) + 1, min(len(text), limit) + 1):
        assert not _decodes(text[:longer])


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
