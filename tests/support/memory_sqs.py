"""An in-memory SQS queue for unit tests: the calls the SQS discovery makes, on a clock the test moves.

Messages are received in the order sent; a message received is invisible for the
VisibilityTimeout asked for, then received again with ApproximateReceiveCount one higher;
``change_message_visibility_batch`` moves that time (0: visible now) and fails for a receipt
handle that is not the message's latest; ``delete_message`` removes it. ``WaitTimeSeconds``
is not waited: an empty queue answers at once. Integration tests use moto's real server.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus


@dataclass
class Message:
    id: str
    body: str
    receipt: str = ""
    visible_at: float = 0.0
    received: int = 0


class MemorySqs:
    """One queue's messages; ``now`` is the clock, ``deleted`` the IDs deleted so far."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.now = 0.0
        self.deleted: list[str] = []
        self.changes: list[tuple[str, int]] = []  # (message ID, VisibilityTimeout) asked for
        self._ids = itertools.count(1)

    def send(self, body: dict[str, Any] | str) -> str:
        message = Message(f"m{next(self._ids)}", body if isinstance(body, str) else json.dumps(body))
        self.messages.append(message)
        return message.id

    def receive_message(
        self, QueueUrl: str, MaxNumberOfMessages: int, VisibilityTimeout: int, **_: Any
    ) -> dict[str, Any]:  # noqa: N803, E501
        out = []
        for message in self.messages:
            if len(out) == MaxNumberOfMessages:
                break
            if message.visible_at <= self.now:
                message.received += 1
                message.receipt = f"{message.id}-r{message.received}"
                message.visible_at = self.now + VisibilityTimeout
                out.append(
                    {
                        "MessageId": message.id,
                        "ReceiptHandle": message.receipt,
                        "Body": message.body,
                        "Attributes": {"ApproximateReceiveCount": str(message.received)},
                    }
                )
        return {"Messages": out} if out else {}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:  # noqa: N803
        for message in self.messages:
            if message.receipt == ReceiptHandle:
                self.messages.remove(message)
                self.deleted.append(message.id)
                break
        return {}

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        failed = []
        for entry in Entries:
            found = [m for m in self.messages if m.receipt == entry["ReceiptHandle"]]
            if not found:
                failed.append({"Id": entry["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True})
                continue
            found[0].visible_at = self.now + entry["VisibilityTimeout"]
            self.changes.append((found[0].id, entry["VisibilityTimeout"]))
        return {"Successful": [], "Failed": failed}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:  # noqa: N803
        waiting = sum(1 for m in self.messages if m.visible_at <= self.now)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(waiting),
                "ApproximateNumberOfMessagesNotVisible": str(len(self.messages) - waiting),
            }
        }


def s3_event(
    bucket: str, key: str, etag: str, size: int = 10, name: str = "ObjectCreated:Put"
) -> dict[str, Any]:
    """An S3 event notification of one object, as S3 sends it (the key URL-encoded as a form)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": "2025-11-28T07:00:00.000Z",
                "eventName": name,
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag},
                },
            }
        ]
    }
