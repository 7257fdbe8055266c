"""SQS queues and S3 event notifications on the moto server, for tests of SQS-driven sources.

moto's server delivers S3 notifications itself (see ``MOTO_NOTES.md`` beside this file, verified by
``tests/integration/test_moto_capabilities.py``): a ``put_object`` into a bucket whose notification
configuration names a queue (directly, or a topic the queue subscribes to) puts an ``ObjectCreated``
record on that queue at once, and configuring the notification first puts an ``s3:TestEvent``
message there. For messages S3 would send but a test cannot make S3 send (an event for another
bucket, an older ``eventVersion``, a record for a key that never existed, a malformed body),
:func:`s3_event` / :func:`sns_envelope` build the exact AWS formats and :func:`publish` sends them.

Usage::

    sqs = client(s3_server, "sqs")
    queue = make_queue(sqs, "events", visibility_timeout=5, max_receive_count=3)
    note = notify_bucket_to_queue(s3_client, sqs, BUCKET, queue.url, "cato/", via_sns=True)
    s3_client.put_object(Bucket=BUCKET, Key="cato/a.gz", Body=b"...")
    [body] = [m["Body"] for m in receive(sqs, queue.url, wait=2)]
    assert object_records(body) == [(BUCKET, "cato/a.gz")]
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import boto3

from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server


def client(server: S3Server, service: str) -> Any:
    """A boto3 client of ``service`` ("sqs", "sns", ...) for the moto server (same credentials)."""
    return _client(server.endpoint_url, service)


def _client(endpoint_url: str, service: str) -> Any:
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


@dataclass(frozen=True)
class Queue:
    url: str
    arn: str
    dlq_url: str | None = None  # the dead-letter queue when ``max_receive_count`` was given


@dataclass(frozen=True)
class Notification:
    queue_url: str
    queue_arn: str
    configuration_id: str
    topic_arn: str | None  # the SNS topic between bucket and queue (``via_sns=True``), else None


def make_queue(
    sqs: Any, name: str, visibility_timeout: int = 30, *, max_receive_count: int | None = None
) -> Queue:
    """Create queue ``name``; with ``max_receive_count`` also ``<name>-dlq`` and a redrive policy to it."""
    attributes = {"VisibilityTimeout": str(visibility_timeout)}
    dlq_url = None
    if max_receive_count is not None:
        dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        policy = {"deadLetterTargetArn": _arn(sqs, dlq_url), "maxReceiveCount": str(max_receive_count)}
        attributes["RedrivePolicy"] = json.dumps(policy)
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return Queue(url, _arn(sqs, url), dlq_url)


def _arn(sqs: Any, queue_url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )


def notify_bucket_to_queue(
    s3: Any,
    sqs: Any,
    bucket: str,
    queue_url: str,
    prefix: str = "",
    via_sns: bool = False,
    *,
    events: tuple[str, ...] = ("s3:ObjectCreated:*",),
    drain_test_event: bool = True,
) -> Notification:
    """Send ``bucket``'s events for keys under ``prefix`` to the queue, directly or through a new SNS
    topic (non-raw delivery: each body is an SNS envelope). Adds to the bucket's existing
    configuration. With ``drain_test_event`` the ``s3:TestEvent`` S3 sends on configuration is
    awaited and deleted, so the queue starts empty."""
    queue_arn = _arn(sqs, queue_url)
    config_id = f"to-{queue_arn.rsplit(':', 1)[1]}-{uuid.uuid4().hex[:8]}"
    entry: dict[str, Any] = {"Id": config_id, "Events": list(events)}
    if prefix:
        entry["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    topic_arn = None
    if via_sns:
        sns = _client(sqs.meta.endpoint_url, "sns")
        topic_arn = sns.create_topic(Name=config_id)["TopicArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        current.setdefault("TopicConfigurations", []).append({**entry, "TopicArn": topic_arn})
    else:
        current.setdefault("QueueConfigurations", []).append({**entry, "QueueArn": queue_arn})
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=current)
    if drain_test_event:
        for message in receive(sqs, queue_url, wait=5, until=1):
            if _payload(message["Body"]).get("Event") != "s3:TestEvent":
                raise AssertionError(f"expected the s3:TestEvent first, got {message['Body']!r}")
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return Notification(queue_url, queue_arn, config_id, topic_arn)


def receive(sqs: Any, queue_url: str, wait: float = 2.0, until: int | None = None) -> list[dict[str, Any]]:
    """Messages received (not deleted) within ``wait`` seconds, or as soon as ``until`` have come."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait
    while (until is None or len(messages) < until) and (left := deadline - time.monotonic()) > 0:
        reply = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=max(0, min(int(left), 20)),
            AttributeNames=["All"],
        )
        messages += reply.get("Messages", [])
    return messages


def s3_event(
    bucket: str,
    key: str,
    *,
    size: int = 0,
    etag: str = "d41d8cd98f00b204e9800998ecf8427e",
    event_name: str = "ObjectCreated:Put",
    region: str = REGION,
    event_version: str = "2.1",
    sequencer: str | None = None,
    version_id: str | None = None,
) -> dict[str, Any]:
    """One S3 event message body as AWS sends it (the "Event message structure" of the S3 user guide):
    ``{"Records": [record]}``, the key URL-encoded as S3 does (``quote_plus``, "/" kept)."""
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag.strip('"')}
    if version_id is not None:
        obj["versionId"] = version_id
    obj["sequencer"] = sequencer or f"{time.time_ns():016X}"
    now = dt.datetime.now(dt.timezone.utc)
    record = {
        "eventVersion": event_version,
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "203.0.113.7"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpc",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "forwarder-test",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }
    return {"Records": [record]}


def s3_test_event(bucket: str) -> dict[str, Any]:
    """The message S3 sends when a notification configuration is saved (AWS adds RequestId/HostId)."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": now,
        "Bucket": bucket,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }


def sns_envelope(
    message: dict[str, Any] | str, topic_arn: str, subject: str = "Amazon S3 Notification"
) -> dict[str, Any]:
    """An SNS notification as SQS receives it without raw delivery; the S3 body is a JSON string in
    ``Message``."""
    body = message if isinstance(message, str) else json.dumps(message)
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn,
        "Subject": subject,
        "Message": body,
        "Timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egEXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
        "UnsubscribeURL": f"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:EXAMPLE",
    }


def publish(sqs: Any, queue_url: str, body: dict[str, Any] | str) -> str:
    """Put ``body`` (a dict is JSON-encoded) on the queue as a producer would; returns the MessageId."""
    text = body if isinstance(body, str) else json.dumps(body)
    return str(sqs.send_message(QueueUrl=queue_url, MessageBody=text)["MessageId"])


def _payload(body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = json.loads(data["Message"])  # unwrap SNS
    return data


def object_records(body: str) -> list[tuple[str, str]]:
    """(bucket, decoded key) of each ``ObjectCreated`` record in a message body, raw or in an SNS
    envelope; [] for an ``s3:TestEvent``. Keys are decoded with ``unquote_plus``."""
    records = _payload(body).get("Records", [])
    return [
        (r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]))
        for r in records
        if str(r.get("eventName", "")).startswith("ObjectCreated:")
    ]
