"""An SQS queue, reached with the source's credentials: receive, renew, delete, hand back.

``make_sqs_client`` builds the client from ``source.sqs`` (the region read from the queue
URL unless given; a queue URL that is not AWS's is its own endpoint) and the source's
credentials or role, as the S3 client is built (``forwarder.sources.s3``). ``Queue`` makes
the calls the SQS discovery needs; what fails is a FetchError in words (a rejected key a
CredentialsError, after which the client is built again). ``Queue.keep`` renews the
visibility of the messages a callback names, from its own thread, every third of the
visibility timeout, until ``stop``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import botocore.config
import botocore.exceptions

from forwarder.config.sources import EventsIntegrationConfig
from forwarder.errors import CredentialsError, FetchError, ForwarderError
from forwarder.sources.s3client import BUILDING, aws_session, describe_s3_error

log = logging.getLogger(__name__)

_REGION = re.compile(r"(?:sqs\.([a-z0-9-]+)\.amazonaws\.com|([a-z0-9-]+)\.queue\.amazonaws\.com)")
ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


def make_sqs_client(settings: EventsIntegrationConfig) -> Any:
    """A boto3 SQS client for ``source.sqs.queue_url``, with the source's credentials."""
    sqs = settings.sqs
    parts = urlsplit(sqs.queue_url)
    found = _REGION.match(parts.netloc)
    region = sqs.region or (found and (found.group(1) or found.group(2))) or settings.region
    endpoint = sqs.endpoint_url or (
        "" if ".amazonaws.com" in parts.netloc else f"{parts.scheme}://{parts.netloc}"
    )
    retries: Any = {"mode": settings.s3_retry_mode, "total_max_attempts": settings.s3_max_attempts}
    config = botocore.config.Config(
        retries=retries,
        connect_timeout=settings.connect_timeout_secs,
        read_timeout=max(settings.read_timeout_secs, sqs.wait_time_secs + 10.0),  # a long poll is no hang
    )
    with BUILDING:
        session = aws_session(settings)
        return session.client("sqs", region_name=region, endpoint_url=endpoint or None, config=config)


class Queue:
    """The calls on one queue; see the module docstring."""

    def __init__(self, settings: EventsIntegrationConfig, client: Callable[[], Any]) -> None:
        self.url = settings.sqs.queue_url
        self._sqs = settings.sqs
        self._client_factory = client
        self.client = client()
        self._stop = threading.Event()
        self._keeper: threading.Thread | None = None

    def call(self, what: str, method: str, **args: Any) -> Any:
        """The SQS call *method* (a client method's name) on this queue; FetchError in words."""
        where = f"{what} {self.url}"
        try:
            return getattr(self.client, method)(QueueUrl=self.url, **args)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if "NonExistentQueue" in code or code == "QueueDoesNotExist":
                raise FetchError(f"{where}: the queue does not exist (check source.sqs.queue_url)") from exc
            if code.startswith("AccessDenied"):
                raise CredentialsError(
                    f"{where}: {code}: may these credentials use the queue? (sqs:ReceiveMessage, "
                    "sqs:DeleteMessage, sqs:ChangeMessageVisibility, sqs:GetQueueAttributes)"
                ) from exc
            failure = describe_s3_error(where, exc)
        except botocore.exceptions.EndpointConnectionError as exc:
            raise FetchError(f"{where}: cannot reach SQS ({exc}); check source.sqs.queue_url") from exc
        except botocore.exceptions.BotoCoreError as exc:
            failure = describe_s3_error(where, exc)
        if isinstance(failure, CredentialsError):
            self.client = self._client_factory()  # read the credentials again for the next call
        raise failure

    def receive(self) -> list[dict[str, Any]]:
        """Up to sqs.max_messages messages, waiting up to sqs.wait_time_secs for the first."""
        answer = self.call(
            "receiving from",
            "receive_message",
            MaxNumberOfMessages=self._sqs.max_messages,
            WaitTimeSeconds=self._sqs.wait_time_secs,
            VisibilityTimeout=self._sqs.visibility_timeout_secs,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return list(answer.get("Messages", []))

    def delete(self, mid: str, receipt: str) -> None:
        """Delete a message; one that cannot be is received again later (and its object is
        in the ledger by then), so a failure is a warning."""
        try:
            self.call("deleting a message from", "delete_message", ReceiptHandle=receipt)
        except FetchError as exc:
            log.warning("%s (message %s); it will be received again and deleted then", exc, mid)

    def visibility(self, receipts: dict[str, str], seconds: int) -> None:
        """Make the messages (ID -> receipt handle) invisible for *seconds* from now (0: visible)."""
        items = list(receipts.items())
        for first in range(0, len(items), 10):  # ChangeMessageVisibilityBatch takes 10
            chunk = items[first : first + 10]
            entries = [
                {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                for i, (_, receipt) in enumerate(chunk)
            ]
            answer = self.call("renewing messages in", "change_message_visibility_batch", Entries=entries)
            for failed in answer.get("Failed", []):
                log.warning(
                    "SQS message %s: its visibility cannot be changed (%s): another reader may "
                    "receive it and deliver its object too (raise source.sqs.visibility_timeout_secs?)",
                    chunk[int(failed["Id"])][0], failed.get("Code"),
                )  # fmt: skip

    def counts(self) -> tuple[int, int]:
        """(messages waiting, messages in flight: received by any reader and not deleted)."""
        found = self.call("asking", "get_queue_attributes", AttributeNames=ATTRIBUTES)["Attributes"]
        return int(found.get(ATTRIBUTES[0], 0)), int(found.get(ATTRIBUTES[1], 0))

    def keep(self, held: Callable[[], dict[str, str]]) -> None:
        """Renew the messages *held()* names, from now until ``stop`` (started once)."""
        if self._keeper is None:
            self._keeper = threading.Thread(
                target=self._renew, args=(held,), name="sqs-visibility", daemon=True
            )
            self._keeper.start()

    def _renew(self, held: Callable[[], dict[str, str]]) -> None:
        seconds = self._sqs.visibility_timeout_secs
        while not self._stop.wait(seconds / 3):
            receipts = held()
            try:
                self.visibility(receipts, seconds)
            except ForwarderError as exc:
                log.warning("SQS: cannot renew the visibility of %d messages: %s", len(receipts), exc)

    def stop(self) -> None:
        """Stop renewing (the thread ends at once)."""
        self._stop.set()
        if self._keeper is not None:
            self._keeper.join()
