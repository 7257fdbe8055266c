"""What the project relies on moto's server for, proved against the real server subprocess: S3
conditional writes (leases and checkpoints of a fleet, issue 17), SQS visibility, receive counts and
redrive, and S3 event notifications to SQS directly or through SNS (issue 15). A moto upgrade that
loses one of them fails here first. Findings and snippets: tests/support/MOTO_NOTES.md."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.s3 import S3Server
from tests.support.sqs import (
    client,
    make_queue,
    notify_bucket_to_queue,
    object_records,
    publish,
    receive,
    s3_event,
    s3_test_event,
    sns_envelope,
)

pytestmark = pytest.mark.integration

BUCKET = "capabilities"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: Any = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _bucket(s3: S3Server, versioned: bool = False) -> Any:
    s3c = s3.client()
    s3c.create_bucket(Bucket=BUCKET)
    if versioned:
        s3c.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return s3c


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
def test_conditional_create_is_refused_when_the_key_exists(s3: S3Server, versioned: bool) -> None:
    """put_object with IfNoneMatch='*' creates a missing key and is refused with 412 once it exists."""
    s3c = _bucket(s3, versioned)
    s3c.put_object(Bucket=BUCKET, Key="lease", Body=b"owner-1", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3c.put_object(Bucket=BUCKET, Key="lease", Body=b"owner-2", IfNoneMatch="*")
    assert _error(exc) == ("PreconditionFailed", 412)
    assert s3c.get_object(Bucket=BUCKET, Key="lease")["Body"].read() == b"owner-1"


def test_if_match_write_is_refused_on_a_stale_etag(s3: S3Server) -> None:
    """put_object with IfMatch replaces the object on its current ETag and is refused (412) on an old one."""
    s3c = _bucket(s3)
    first = s3c.put_object(Bucket=BUCKET, Key="checkpoint", Body=b"1", IfNoneMatch="*")["ETag"]
    second = s3c.put_object(Bucket=BUCKET, Key="checkpoint", Body=b"2", IfMatch=first)["ETag"]
    assert second != first
    with pytest.raises(ClientError) as exc:
        s3c.put_object(Bucket=BUCKET, Key="checkpoint", Body=b"stale writer", IfMatch=first)
    assert _error(exc) == ("PreconditionFailed", 412)
    assert s3c.get_object(Bucket=BUCKET, Key="checkpoint")["Body"].read() == b"2"


def test_if_match_write_to_a_missing_key_is_refused(s3: S3Server) -> None:
    """put_object with IfMatch on a key that does not exist fails with 404 NoSuchKey and creates nothing."""
    s3c = _bucket(s3)
    with pytest.raises(ClientError) as exc:
        s3c.put_object(Bucket=BUCKET, Key="released", Body=b"x", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert _error(exc) == ("NoSuchKey", 404)
    assert "Contents" not in s3c.list_objects_v2(Bucket=BUCKET)


def test_delete_with_if_match_is_refused_on_a_stale_etag(s3: S3Server) -> None:
    """delete_object with IfMatch keeps the object on a stale ETag (412) and deletes it on the current one."""
    s3c = _bucket(s3)
    old = s3c.put_object(Bucket=BUCKET, Key="lease", Body=b"1")["ETag"]
    current = s3c.put_object(Bucket=BUCKET, Key="lease", Body=b"2")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3c.delete_object(Bucket=BUCKET, Key="lease", IfMatch=old)
    assert _error(exc) == ("PreconditionFailed", 412)
    s3c.delete_object(Bucket=BUCKET, Key="lease", IfMatch=current)
    assert "Contents" not in s3c.list_objects_v2(Bucket=BUCKET)


def test_racing_conditional_creates_have_exactly_one_winner(s3: S3Server) -> None:
    """Eight clients creating one key with IfNoneMatch='*' at once: exactly one wins, every round."""
    clients = [_bucket(s3)] + [s3.client() for _ in range(7)]
    for round_ in range(20):
        barrier, winners = threading.Barrier(len(clients)), list[int]()

        def take(
            i: int,
            key: str = f"lease-{round_}",
            barrier: threading.Barrier = barrier,
            winners: list[int] = winners,
        ) -> None:
            barrier.wait()
            try:
                clients[i].put_object(Bucket=BUCKET, Key=key, Body=str(i).encode(), IfNoneMatch="*")
                winners.append(i)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "PreconditionFailed"

        threads = [threading.Thread(target=take, args=(i,)) for i in range(len(clients))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len(winners) == 1, f"round {round_}: winners {winners}"


def test_visibility_timeout_hides_a_message_then_returns_it_with_its_receive_count(s3: S3Server) -> None:
    """A received message is hidden for the visibility timeout, then back with ApproximateReceiveCount 2."""
    sqs = client(s3, "sqs")
    queue = make_queue(sqs, "visibility", visibility_timeout=1)
    sqs.send_message(QueueUrl=queue.url, MessageBody="object")
    [first] = receive(sqs, queue.url, wait=2, until=1)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert sqs.receive_message(QueueUrl=queue.url).get("Messages") is None
    time.sleep(1.2)
    [again] = receive(sqs, queue.url, wait=2, until=1)
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["ReceiptHandle"] != first["ReceiptHandle"]


def test_change_message_visibility_keeps_a_message_hidden_longer(s3: S3Server) -> None:
    """ChangeMessageVisibility keeps a received message hidden past its queue's visibility timeout."""
    sqs = client(s3, "sqs")
    queue = make_queue(sqs, "extend", visibility_timeout=1)
    sqs.send_message(QueueUrl=queue.url, MessageBody="big object")
    [message] = receive(sqs, queue.url, wait=2, until=1)
    sqs.change_message_visibility(
        QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=3
    )
    time.sleep(1.5)
    assert sqs.receive_message(QueueUrl=queue.url).get("Messages") is None
    assert len(receive(sqs, queue.url, wait=4, until=1)) == 1


def test_redrive_moves_a_message_to_the_dead_letter_queue(s3: S3Server) -> None:
    """A message received maxReceiveCount times moves to the dead-letter queue instead of a next receive."""
    sqs = client(s3, "sqs")
    queue = make_queue(sqs, "poison", visibility_timeout=30, max_receive_count=2)
    assert queue.dlq_url is not None
    sqs.send_message(QueueUrl=queue.url, MessageBody="poison")
    for _ in range(2):
        [message] = receive(sqs, queue.url, wait=2, until=1)
        sqs.change_message_visibility(
            QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    assert sqs.receive_message(QueueUrl=queue.url).get("Messages") is None
    [dead] = receive(sqs, queue.dlq_url, wait=2, until=1)
    assert dead["Body"] == "poison"


def test_bucket_notification_puts_object_created_records_on_the_queue(s3: S3Server) -> None:
    """Saving the configuration queues an s3:TestEvent; a put under the prefix queues one ObjectCreated
    record, a put elsewhere none."""
    s3c, sqs = _bucket(s3), client(s3, "sqs")
    queue = make_queue(sqs, "created")
    notify_bucket_to_queue(s3c, sqs, BUCKET, queue.url, "cato/", drain_test_event=False)
    [test_event] = receive(sqs, queue.url, wait=3, until=1)
    assert json.loads(test_event["Body"])["Event"] == "s3:TestEvent"
    sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=test_event["ReceiptHandle"])
    s3c.put_object(Bucket=BUCKET, Key="other/x.gz", Body=b"x")
    s3c.put_object(Bucket=BUCKET, Key="cato/2026/a b+c.gz", Body=b"events")
    messages = receive(sqs, queue.url, wait=2)
    assert [object_records(m["Body"]) for m in messages] == [[(BUCKET, "cato/2026/a b+c.gz")]]
    [record] = json.loads(messages[0]["Body"])["Records"]
    assert record["eventName"] == "ObjectCreated:Put" and record["s3"]["object"]["size"] == 6
    assert set(record) <= set(s3_event(BUCKET, "k")["Records"][0]), "moto sends a field AWS does not"


def test_bucket_notification_through_sns_arrives_in_an_sns_envelope(s3: S3Server) -> None:
    """With S3 -> SNS -> SQS (raw delivery off) a body is an SNS Notification whose Message is the event."""
    s3c, sqs = _bucket(s3), client(s3, "sqs")
    queue = make_queue(sqs, "via-sns")
    note = notify_bucket_to_queue(s3c, sqs, BUCKET, queue.url, "cato/", via_sns=True)
    s3c.put_object(Bucket=BUCKET, Key="cato/b.gz", Body=b"events")
    [message] = receive(sqs, queue.url, wait=3, until=1)
    envelope = json.loads(message["Body"])
    assert envelope["Type"] == "Notification" and envelope["TopicArn"] == note.topic_arn
    assert json.loads(envelope["Message"])["Records"][0]["eventName"] == "ObjectCreated:Put"
    assert object_records(message["Body"]) == [(BUCKET, "cato/b.gz")]


def test_hand_written_events_read_like_the_ones_s3_sends(s3: S3Server) -> None:
    """An event built by tests.support.sqs, published raw or in an SNS envelope, decodes like moto's own."""
    sqs = client(s3, "sqs")
    queue = make_queue(sqs, "hand-written")
    event = s3_event(BUCKET, "cato/2026/a b+c.gz", size=6)
    publish(sqs, queue.url, event)
    publish(sqs, queue.url, sns_envelope(event, "arn:aws:sns:us-east-1:123456789012:t"))
    publish(sqs, queue.url, s3_test_event(BUCKET))
    bodies = [m["Body"] for m in receive(sqs, queue.url, wait=3, until=3)]
    assert sorted(object_records(body) for body in bodies) == [[], *[[(BUCKET, "cato/2026/a b+c.gz")]] * 2]
