"""Messages longer than the collector takes: ``output.oversize`` truncates, splits or drops them.

The limit is ``output.max_message_bytes``, and never more than the transport can carry
(a UDP datagram: 65,507 bytes). It counts the syslog message, header and event, before
any framing. A message over it is handled the same way on every protocol:

- ``truncate``: the message cut to the limit at a UTF-8 character boundary (never inside
  a multi-byte sequence): the header and the start of the event arrive.
- ``split``: the event cut into pieces, each sent with the event's own header (same PRI,
  time, hostname, app name), one after the other in the same batch. Nothing is added to
  a piece: the pieces' bodies are consecutive byte ranges of the event, cut at UTF-8
  boundaries, so joined in order they are the event again. A piece after the first never
  starts the way an event does (``CEF:``, ``{``, ``[`` or white space): where a cut would
  leave one starting so, it moves back a few characters. A collector tells a continuation
  by that, unless the event holds a run of such characters longer than half a piece.
- ``drop``: nothing is sent; the pipeline reports it like a bad record.
"""

from __future__ import annotations

POLICIES = ("truncate", "split", "drop")
# How an event's text begins (forwarder.formats.records.classify: "CEF:", or "{" / "[" after white
# space): a continuation piece must not, so that it cannot pass for an event of its own.
EVENT_STARTS = (b"CEF:", b"{", b"[", b" ", b"\t", b"\r", b"\n", b"\x0b", b"\x0c")
# Below this many bytes of room beside the header, a split could not make headway.
_MIN_PIECE_BYTES = 16


# RFC 3629 4: UTF8-char = UTF8-1 / UTF8-2 / UTF8-3 / UTF8-4
#             UTF8-1 = %x00-7F               UTF8-2 = %xC2-DF UTF8-tail
#             UTF8-3 = %xE0-EF 2( UTF8-tail ) UTF8-4 = %xF0-F4 3( UTF8-tail )
#             UTF8-tail = %x80-BF           (the exact second-byte ranges aside)
def utf8_cut(data: bytes, end: int) -> int:
    """The largest cut at or before *end* that does not fall inside a UTF-8 sequence of *data*.

    Only a sequence that starts before *end* and goes on after it moves the cut back (to
    its lead byte); bytes that are not UTF-8 at all are cut where they are.
    """
    if end >= len(data):
        return len(data)
    if not 0x80 <= data[end] < 0xC0:
        return end  # the byte after the cut starts a character (or is not UTF-8)
    for i in range(end - 1, max(end - 4, -1), -1):
        byte = data[i]
        if byte < 0x80:
            return end  # ASCII, then stray continuation bytes
        if byte >= 0xC0:  # the lead byte of the sequence the cut is in
            length = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return i if i + length > end else end
    return end


def truncate(message: bytes, limit: int) -> bytes:
    """*message* cut to at most *limit* bytes, at a UTF-8 character boundary."""
    if len(message) <= limit:
        return message
    return message[: utf8_cut(message, limit)]


def split(message: bytes, head: int, limit: int) -> list[bytes]:
    """*message* (its first *head* bytes the syslog header) as pieces of at most *limit* bytes.

    Each piece is the header followed by the next part of the event; see the module
    docstring for where the cuts fall.
    """
    if len(message) <= limit:
        return [message]
    header, body = message[:head], message[head:]
    room = limit - head
    if room < _MIN_PIECE_BYTES:  # not with config.MIN_MESSAGE_BYTES (480) and headers of <= ~345
        return [truncate(message, limit)]
    pieces = []
    start = 0
    while len(body) - start > room:
        end = _piece_end(body, start, room)
        pieces.append(header + body[start:end])
        start = end
    pieces.append(header + body[start:])
    return pieces


def _piece_end(body: bytes, start: int, room: int) -> int:
    """Where the piece of *body* from *start* ends: at most *room* bytes, a UTF-8 boundary,
    and not where the rest would start like an event (moving back at most half the room)."""
    end = utf8_cut(body, start + room)
    if end <= start:
        end = start + room  # no character boundary in reach: not UTF-8, cut the bytes
    cut = end
    floor = start + room // 2
    while cut > floor and body.startswith(EVENT_STARTS, cut):
        cut = utf8_cut(body, cut - 1)
    return cut if cut > floor else end


# RFC 5424 6: HEADER SP STRUCTURED-DATA SP MSG, HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME
# SP APP-NAME SP PROCID SP MSGID; forwarder.formats.syslog writes PROCID, MSGID and SD as "-" and no
# field holds a space (PRINTUSASCII), so MSG starts after the 7th space.
# RFC 3164 4.1: PRI TIMESTAMP SP HOSTNAME SP TAG ":" SP CONTENT, TIMESTAMP "Mmm dd hh:mm:ss"
# (15 characters, the day space-padded), HOSTNAME without spaces, TAG alphanumeric.
def header_length(message: bytes, header: str) -> int | None:
    """Bytes of the syslog header (output.header) that forwarder.formats.syslog put before the event
    in *message*; None when *message* does not start with one. Read from the message, so
    it holds whatever output.encoding made of the event."""
    if header == "none":
        return 0
    if header == "rfc5424":
        end = 0
        for _ in range(7):
            end = message.find(b" ", end) + 1
            if not end:
                return None
        return end
    start = message.find(b">") + 1
    host_end = message.find(b" ", start + 16) if start else -1
    tag_end = message.find(b": ", host_end + 1) if host_end > 0 else -1
    if tag_end < 0 or b" " in message[host_end + 1 : tag_end]:
        return None
    return tag_end + 2


def fit(message: bytes, head: int | None, limit: int, policy: str) -> list[bytes]:
    """What to send for *message* under *policy*: itself if it fits, else truncated, split or nothing.

    *head* is the length of the syslog header (header_length); None when there is none to
    be found, and then a split truncates instead.
    """
    if len(message) <= limit:
        return [message]
    if policy == "split" and head is not None:
        return split(message, head, limit)
    if policy in ("truncate", "split"):
        return [truncate(message, limit)]
    return []
