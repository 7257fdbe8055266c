"""forwarder.formats.feedfields: the API's text fieldsMap typed as the push feed's JSON event, so the
same event gives the same message whichever path it came by."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from forwarder.config import parse_config
from forwarder.core.reading import ReadSettings, read_batches
from forwarder.formats.encoder import EventEncoder
from forwarder.formats.feedfields import audit_event, typed_event, typed_value
from tests.support.cato_api import CatoApiServer, make_event

# The push feed's form of an event (typed), as Cato's Events Integration writes it.
PUSHED: dict[str, Any] = {
    **make_event(event_count=3, static_host=True, app_stack=["TCP", "TLS", "HTTP(S)"], categories=[]),
    "time": 1763478148991,
    "time_str": "2025-11-18T15:02:28Z",
    "account_id": 20000232,
    "event_id": "c8d2456ef8b48123",
    "internalId": "c8d2456ef8b48123",
}


def served(event: dict[str, Any]) -> dict[str, Any]:
    """The fieldsMap the API serves for *event* (its values made text by the stand-in)."""
    with CatoApiServer() as api:
        return api.add_events(str(event["account_id"]), [event])[0]


def test_the_api_record_types_back_to_the_pushed_event() -> None:
    """Numbers, booleans and joined lists of an API record come back as the push feed types them."""
    fields = served(PUSHED)
    assert fields["event_count"] == "3" and fields["app_stack"] == "TCP, TLS, HTTP(S)"
    assert typed_event(fields) == PUSHED


@pytest.mark.parametrize("encoding", ["cef", "leef", "json"])
def test_either_path_gives_the_same_message(tmp_path: Path, encoding: str) -> None:
    """output.encoding cef, leef and json: the API's record and the pushed event give the same bytes."""
    config = parse_config(f"source:\n  bucket: b\noutput:\n  encoding: {encoding}\n", env={}).pipeline()
    encoder = EventEncoder(config.output, config.parser, clock=lambda: 1_800_000_000.0)
    messages = []
    for name, event in (("pushed", PUSHED), ("api", typed_event(served(PUSHED)))):
        path = tmp_path / f"{name}.ndjson"
        path.write_bytes(orjson.dumps(event) + b"\n")
        batches = list(read_batches(path, name, ReadSettings(format="json"), encoder))
        messages.append([m for batch in batches for m in batch.messages])
    assert messages[0] == messages[1] and len(messages[0]) == 1


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("dest_port", "443", 443),
        ("dest_port", "", ""),
        ("event_count", "1e3", "1e3"),
        ("static_host", "false", False),
        ("static_host", "maybe", "maybe"),
        ("categories", "", []),
        ("categories", "Malware", ["Malware"]),
        ("rule_name", "443", "443"),
    ],
)
def test_a_value_that_does_not_read_as_its_type_stays_text(name: str, text: str, value: Any) -> None:
    """Typed where the text is a number, boolean or list the field is known to hold; else kept as text."""
    assert typed_value(name, text) == value


def test_an_audit_record_gets_its_time_and_numbers() -> None:
    """auditFeed fields: event_type "Audit Trail", time from insertion_date, dates and account as numbers."""
    event = audit_event({"insertion_date": "1781883741985", "account_id": "12345", "admin_id": "31363"})
    assert event == {
        "event_type": "Audit Trail",
        "insertion_date": 1781883741985,
        "account_id": 12345,
        "admin_id": "31363",
        "time": 1781883741985,
    }
