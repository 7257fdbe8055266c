"""Unit tests for forwarder.sources.notifications: S3 event notifications as SQS delivers them."""

from __future__ import annotations

import json

from forwarder.sources.notifications import OTHER_EVENT, TEST_EVENT, Created, read_message
from tests.support.memory_sqs import s3_event


def test_an_object_created_notification_gives_the_object_with_its_key_decoded() -> None:
    """Bucket, key (URL-decoded as a form: + is a space, %2B a plus), size, ETag and time."""
    created, why = read_message(json.dumps(s3_event("cato-events", "cato/a b+c.gz", "9dd4", 1034)))
    assert why == ""
    assert created == [Created("cato-events", "cato/a b+c.gz", 1034, "9dd4", 1764313200.0)]


def test_a_notification_wrapped_by_sns_reads_the_same() -> None:
    """SNS's envelope (Type Notification, the S3 message as a string) is opened."""
    inner = json.dumps(s3_event("cato-events", "cato/x.gz", "e1"))
    envelope = json.dumps({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": inner})
    assert read_message(envelope) == read_message(inner)


def test_test_events_and_other_events_name_no_object() -> None:
    """s3:TestEvent (raw or through SNS) and ObjectRemoved say why there is nothing to read."""
    test = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "cato-events"})
    assert read_message(test) == ([], TEST_EVENT)
    assert read_message(json.dumps({"Type": "Notification", "Message": test})) == ([], TEST_EVENT)
    removed = s3_event("cato-events", "cato/x.gz", "e1", name="ObjectRemoved:Delete")
    assert read_message(json.dumps(removed)) == ([], OTHER_EVENT)


def test_what_is_no_s3_notification_is_unreadable_with_the_reason() -> None:
    """Not JSON, no Records, another event source, an EventBridge event, an SNS subscription to
    confirm: unreadable, and why."""
    assert read_message("hello")[1].startswith("unreadable: not JSON")
    assert read_message("[1]")[1] == "unreadable: not a JSON object"
    assert "EventBridge" in read_message(json.dumps({"detail-type": "Object Created", "detail": {}}))[1]
    other = {"Records": [{"eventSource": "aws:sqs"}]}
    assert read_message(json.dumps(other))[1] == "unreadable: eventSource 'aws:sqs', not aws:s3"
    confirm = {"Type": "SubscriptionConfirmation", "SubscribeURL": "https://sns.example/confirm"}
    assert "open its SubscribeURL" in read_message(json.dumps(confirm))[1]
    broken = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {}}]}
    assert read_message(json.dumps(broken))[1] == "unreadable: a record without 'object'"
