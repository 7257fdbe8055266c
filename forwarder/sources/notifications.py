"""S3 event notifications as SQS delivers them: straight from the bucket, or wrapped by SNS.

What a message body can be (AWS, "Event message structure"; moto sends the same)::

    {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                  "eventTime": "2026-11-28T07:25:12.123Z",
                  "s3": {"bucket": {"name": "cato-events"},
                         "object": {"key": "cato/2026/11/28/a+b%2Bc.gz", "size": 1034, "eTag": "9dd4..."}}}]}
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "...", "Bucket": "cato-events"}
    {"Type": "Notification", "TopicArn": "...", "Message": "<one of the above, as a string>", ...}

The last is SNS's envelope (a subscription without raw message delivery); with raw
delivery the body is the S3 message itself. Keys arrive URL-encoded as in a form (a space
is ``+``): ``unquote_plus`` gives the key back. ``read_message`` is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_plus

# Why a message names no object to deliver.
TEST_EVENT = "test_event"  # s3:TestEvent, sent when notifications are set up
OTHER_EVENT = "other_event"  # ObjectRemoved, ObjectRestore...: nothing new to read
UNREADABLE = "unreadable"  # not an S3 event notification at all


@dataclass(frozen=True)
class Created:
    """An object an ``ObjectCreated`` notification tells of."""

    bucket: str
    key: str
    size: int
    etag: str
    time: float  # eventTime, epoch seconds (0 when absent)


def _epoch(text: object) -> float:
    if not isinstance(text, str):
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def read_message(body: str) -> tuple[list[Created], str]:
    """(the objects a message body tells of, "") or ([], why none: TEST_EVENT, OTHER_EVENT,
    or UNREADABLE + ": " + what is wrong)."""
    try:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("Type") == "Notification" and "Message" in message:
            message = json.loads(message["Message"])  # SNS's envelope
    except (ValueError, TypeError) as exc:
        return [], f"{UNREADABLE}: not JSON ({exc})"
    if not isinstance(message, dict):
        return [], f"{UNREADABLE}: not a JSON object"
    if message.get("Event") == "s3:TestEvent":
        return [], TEST_EVENT
    if message.get("Type") == "SubscriptionConfirmation":  # SNS, when the queue is in another account
        return [], f"{UNREADABLE}: SNS asks to confirm the subscription: open its SubscribeURL"
    records = message.get("Records")
    if not isinstance(records, list) or not records:
        hint = (
            " (an EventBridge event? send the bucket's notifications to SQS or SNS)"
            if "detail" in message
            else ""
        )
        return [], f"{UNREADABLE}: no Records{hint}"
    created = []
    for record in records:
        try:
            if record["eventSource"] != "aws:s3":
                return [], f"{UNREADABLE}: eventSource {record['eventSource']!r}, not aws:s3"
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            s3 = record["s3"]
            found = s3["object"]
            created.append(
                Created(
                    str(s3["bucket"]["name"]),
                    unquote_plus(str(found["key"])),
                    int(found.get("size", 0)),
                    str(found.get("eTag", "")).strip('"'),
                    _epoch(record.get("eventTime")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            return [], f"{UNREADABLE}: a record without {exc}"
    return (created, "") if created else ([], OTHER_EVENT)
