"""An event's severity, in syslog's terms (the header's PRI) and in LEEF's (``sev``).

CEF's Severity field is 0-10 or a word (rev 25: Unknown, Low, Medium, High, Very-High);
Cato's JSON ``severity`` uses the same words (and Critical). ArcSight's bands are
0-3 low, 4-6 medium, 7-8 high, 9-10 very high; they become syslog's severities (RFC 5424
table 2): 6 informational, 4 warning, 3 error, 2 critical; anything else is 5 (notice).
LEEF's ``sev`` is a number 1-10: a number is kept within it, a word becomes the top of its band.
"""

from __future__ import annotations

import functools

from forwarder.formats.cef import split_fields

SEVERITY_NOTICE = 5
_BANDS = ((3, 6), (6, 4), (8, 3), (10, 2))  # (highest CEF value in the band, syslog severity)
_WORDS = {"low": 6, "medium": 4, "high": 3, "very-high": 2, "very high": 2, "critical": 2, "unknown": 5}
_LEEF_WORDS = {"low": "3", "medium": "6", "high": "8", "very-high": "10", "very high": "10", "critical": "10"}
_SEVERITY_FIELD = 6  # CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension


@functools.lru_cache(maxsize=1024)  # events repeat their severities
def syslog_severity(value: str) -> int:
    """Syslog severity for an event's severity value (CEF's 0-10 bands and words)."""
    text = value.strip().lower()
    if text.isascii() and text.isdigit():
        number = int(text) if len(text.lstrip("0")) <= 3 else 1000  # no int() of 5,000 digits
        return next((severity for highest, severity in _BANDS if number <= highest), SEVERITY_NOTICE)
    return _WORDS.get(text, SEVERITY_NOTICE)


def field_severity(field: bytes) -> int:
    """``syslog_severity`` of a raw (bytes) Severity field."""
    return syslog_severity(field.decode("utf-8", "replace"))


# The Severity fields met in practice, as bytes, for the encoder's lookups without decoding.
COMMON_FIELDS = (*(b"%d" % n for n in range(11)), b"Low", b"Medium", b"High", b"Very-High", b"Unknown", b"")


def cef_severity(text: bytes) -> int:
    """Syslog severity for a CEF line; notice when its Severity field is missing or odd."""
    parts = split_fields(text, 7)
    return field_severity(parts[_SEVERITY_FIELD]) if len(parts) > 7 else SEVERITY_NOTICE


@functools.lru_cache(maxsize=1024)
def leef_severity(value: str) -> str | None:
    """LEEF sev (1-10) for a CEF/Cato severity: a number as it is (0 as 1, above 10 as 10), a
    word as its band's top; None for a word LEEF has no number for."""
    text = value.strip()
    if text.isascii() and text.isdigit():
        return str(min(max(int(text), 1), 10)) if len(text.lstrip("0")) <= 2 else "10"
    return _LEEF_WORDS.get(text.lower())
