"""Cato Events Integration objects in the test bucket, and S3 notifications to an SQS queue.

Objects are what Cato pushes: gzip NDJSON, one typed event per line (numbers, booleans,
arrays), under UUID-like keys that do not sort by time. ``Notifications`` sets the bucket's
``s3:ObjectCreated:*`` notifications to go to a queue, directly or through an SNS topic.

What moto's server (5.2) does here, found by trying it (tests/integration/test_events_*.py
rely on each point):
- PutObject sends the notification at once, synchronously, to SQS (QueueConfigurations) or
  SNS (TopicConfigurations), honouring prefix filters; setting the configuration sends an
  ``s3:TestEvent``. Keys are encoded with ``quote_plus`` (moto also writes "/" as %2F; S3
  does not): ``unquote_plus`` reads both. There is no ``sequencer``.
- SNS to SQS wraps the message in SNS's ``Notification`` envelope unless the subscription
  has ``RawMessageDelivery``.
- SQS in server mode keeps real time: VisibilityTimeout, ChangeMessageVisibility(Batch),
  ApproximateReceiveCount, long polling (WaitTimeSeconds is waited) and the
  ApproximateNumberOfMessages(NotVisible) counts behave as AWS documents them.
- One account (123456789012), region us-east-1; queue URLs are ``http://127.0.0.1:PORT/123456789012/NAME``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import boto3

from tests.support.backlog import write_test_config
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, S3Server

BUCKET = "cato-events"
PREFIX = "cato/"
T0_MS = 1_763_478_148_991  # 2025-11-18T15:02:28.991Z


def push_event(obj: int, i: int) -> bytes:
    """Event *i* of object *obj*: one NDJSON line with the push feed's typed values."""
    event = {
        "event_type": "Security",
        "event_sub_type": "Internet Firewall",
        "time": T0_MS + obj * 1000 + i,
        "time_str": "2025-11-18T15:02:28Z",
        "account_id": 20000232,
        "src_ip": f"10.0.{obj % 250}.{i % 250}",
        "action": "Block" if i % 3 == 0 else "Allow",
        "event_count": 1 + i % 2,
        "static_host": i % 2 == 0,
        "app_stack": ["Office365", "Microsoft"],
        "rule_name": f'rule "{obj}" \\ =|',
        "site_name": "Zürich HQ",
        "obj": obj,
        "i": i,
    }
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def uuid_key(obj: int) -> str:
    """A UUID-like key for object *obj*: its order says nothing about *obj*."""
    digest = hashlib.sha1(str(obj).encode()).hexdigest()  # noqa: S324 - a name, not a secret
    return f"{PREFIX}{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}.gz"


def ndjson(obj: int, events: int) -> list[bytes]:
    return [push_event(obj, i) for i in range(events)]


def put_object(client: Any, obj: int, events: int, gz: bool = True, key: str | None = None) -> list[bytes]:
    """Write object *obj* (gzip, or plain text under the same .gz name) and return its lines."""
    lines = ndjson(obj, events)
    data = b"".join(line + b"\n" for line in lines)
    client.put_object(Bucket=BUCKET, Key=key or uuid_key(obj), Body=gzip.compress(data) if gz else data)
    return lines


def aws(server: S3Server, service: str) -> Any:
    """A boto3 client of *service* on the moto server."""
    return boto3.session.Session().client(
        service,
        endpoint_url=server.endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


class Notifications:
    """A queue the bucket's ObjectCreated notifications go to (directly, or through SNS)."""

    def __init__(self, server: S3Server, name: str = "cato-events", visibility_secs: int = 30) -> None:
        self.sqs, self.s3 = aws(server, "sqs"), aws(server, "s3")
        attributes = {"VisibilityTimeout": str(visibility_secs)}
        self.url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        self.arn = arn["Attributes"]["QueueArn"]
        self.server = server

    def direct(self, prefix: str = PREFIX) -> None:
        """Bucket -> queue, for keys under *prefix* ("" for all)."""
        rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
        config: dict[str, Any] = {"QueueArn": self.arn, "Events": ["s3:ObjectCreated:*"]}
        if rules:
            config["Filter"] = {"Key": {"FilterRules": rules}}
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [config]}
        )

    def through_sns(self, raw: bool = False) -> None:
        """Bucket -> SNS topic -> queue (SNS's envelope unless *raw*), for every key."""
        sns = aws(self.server, "sns")
        topic = sns.create_topic(Name="cato-events")["TopicArn"]
        attributes = {"RawMessageDelivery": "true"} if raw else {}
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=self.arn, Attributes=attributes)
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]
            },
        )

    def counts(self) -> tuple[int, int]:
        """(messages waiting, messages in flight)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return int(found[names[0]]), int(found[names[1]])


def write_events_config(path: Path, endpoint: str, output: dict[str, Any], **sections: Any) -> Path:
    """A forwarder config for kind events_integration on the test bucket; *sections* override
    or add keys section by section (``source={"discovery": "sqs", ...}``)."""
    source = {
        "kind": "events_integration",
        "bucket": BUCKET,
        "prefix": PREFIX,
        "endpoint_url": endpoint,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "poll_interval_secs": 0.3,
        "bad_file_retry_secs": 0.05,
    }
    return write_test_config(path, source, output, sections)
