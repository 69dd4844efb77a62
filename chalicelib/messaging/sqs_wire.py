"""SQS's message calls over its JSON protocol: the per-message calls of the matcher and the API.

Why not boto3 there: a boto3 call spends most of its CPU before and after the network (request
model validation, event hooks, endpoint rules, response parsing). The matcher makes two per batch
of 10 on cores it shares with Postgres and, locally, the SQS stand-in, and the API makes one per
order, inside the request it answers; this client does a fraction of that work (benchmarks/e2e.py
measures both clients' bare receive + delete loops). What is hard stays in well-kept libraries:
signing and credentials are botocore's (SigV4Auth, the default credential chain, so an ECS task
role or a Lambda's role refreshes as under boto3) and HTTP is a urllib3 connection pool. Only the
request and reply shapes are ours, and for these calls the JSON that AWS sends is exactly the dict
boto3 returns, so the methods take boto3's keyword names and return boto3's replies.
sqs.message_client gives each process one.

Queue administration (create, attributes) stays on boto3 (sqs.py): it is not per message. The
queue URL lookup is here too, so that the API's first send of a process fits its request's budget.

Time: the matcher's calls wait out the long poll and retry. A call made inside an API request is
bounded instead: `until(deadline)` gives a view of the client whose calls share one deadline,
connect and read together, and the API's client makes one attempt per call (sqs.py).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any
from urllib.parse import urlsplit

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.session import get_session

from chalicelib.platform.config import Settings, stand_in_credentials

_CONTENT_TYPE = "application/x-amz-json-1.0"
# Connection failures, read timeouts and 5xx are retried, as boto3's standard mode does. Each of
# our calls is safe to repeat: a send repeats under the same deduplication id (FIFO keeps one), a
# delete or release repeats harmlessly, and the messages a lost receive took come back after
# their visibility timeout, retried or not.
_RETRIES = urllib3.Retry(
    total=3,
    connect=3,
    read=2,
    status=3,
    backoff_factor=0.05,
    status_forcelist=(500, 502, 503, 504),
    allowed_methods=None,  # every SQS call is a POST
    raise_on_status=False,
)
_TIMEOUT = urllib3.Timeout(connect=3.0, read=25.0)  # above the 20 s long poll


class SqsError(RuntimeError):
    """SQS refused a call: `code` is its error type (e.g. "QueueDoesNotExist")."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status


class SqsWire:
    """Thread-safe: the pool hands each thread its own connection (up to `connections`).

    `timeout` and `retries` are each call's, unless the view of `until` bounds the time."""

    def __init__(
        self,
        cfg: Settings,
        connections: int = 4,
        *,
        timeout: urllib3.Timeout = _TIMEOUT,
        retries: urllib3.Retry | bool = _RETRIES,
    ) -> None:
        self._deadline: float | None = None
        endpoint = cfg.aws_endpoint_url or f"https://sqs.{cfg.aws_region}.amazonaws.com"
        parts = urlsplit(endpoint)
        self._url = f"{parts.scheme}://{parts.netloc}/"
        self._host = parts.netloc
        self._region = cfg.aws_region
        if stand_in_credentials(cfg):
            self._credentials: Any = Credentials("test", "test")
        else:
            self._credentials = get_session().get_credentials()
            if self._credentials is None:
                raise SqsError("NoCredentials", "no AWS credentials found", 0)
        self._pool = urllib3.connection_from_url(
            self._url,
            maxsize=connections,
            block=False,
            timeout=timeout,
            retries=retries,
        )

    def until(self, deadline: float) -> SqsWire:
        """This client (the same connections) with every call bounded by `deadline`, a
        `time.monotonic()` instant: a call starts only before it and gives up at it, connect and
        read together (TimeoutError before, urllib3's timeout errors during)."""
        bounded = copy.copy(self)
        bounded._deadline = deadline
        return bounded

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(params, separators=(",", ":")).encode()
        request = AWSRequest(
            "POST",
            self._url,
            data=body,
            headers={
                "Host": self._host,
                "Content-Type": _CONTENT_TYPE,
                "X-Amz-Target": f"AmazonSQS.{action}",
            },
        )
        # Frozen per call: a refresh between reading the key and the secret cannot mix them.
        SigV4Auth(self._credentials.get_frozen_credentials(), "sqs", self._region).add_auth(request)
        options: dict[str, Any] = {}
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no time left for {action}")
            options["timeout"] = urllib3.Timeout(total=left)
        reply = self._pool.urlopen(
            "POST", "/", body=body, headers=dict(request.headers.items()), **options
        )
        try:
            data: dict[str, Any] = json.loads(reply.data) if reply.data else {}
        except ValueError:  # not SQS speaking (a proxy's error page, say)
            raise SqsError("BadReply", repr(reply.data[:200]), reply.status) from None
        if reply.status != 200:
            code = str(data.get("__type", "HTTP")).rsplit("#", 1)[-1]
            raise SqsError(code, str(data.get("message", reply.reason)), reply.status)
        return data

    def get_queue_url(self, *, QueueName: str) -> dict[str, Any]:
        return self.call("GetQueueUrl", {"QueueName": QueueName})

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        AttributeNames: list[str] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "QueueUrl": QueueUrl,
            "MaxNumberOfMessages": MaxNumberOfMessages,
            "WaitTimeSeconds": WaitTimeSeconds,
        }
        if AttributeNames:
            params["MessageSystemAttributeNames"] = AttributeNames
        return self.call("ReceiveMessage", params)

    def send_message(
        self,
        *,
        QueueUrl: str,
        MessageBody: str,
        MessageGroupId: str,
        MessageDeduplicationId: str,
    ) -> dict[str, Any]:
        return self.call(
            "SendMessage",
            {
                "QueueUrl": QueueUrl,
                "MessageBody": MessageBody,
                "MessageGroupId": MessageGroupId,
                "MessageDeduplicationId": MessageDeduplicationId,
            },
        )

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return self.call("SendMessageBatch", {"QueueUrl": QueueUrl, "Entries": Entries})

    def delete_message_batch(
        self, *, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self.call("DeleteMessageBatch", {"QueueUrl": QueueUrl, "Entries": Entries})

    def change_message_visibility_batch(
        self, *, QueueUrl: str, Entries: list[dict[str, Any]]
    ) -> dict[str, Any]:
        return self.call("ChangeMessageVisibilityBatch", {"QueueUrl": QueueUrl, "Entries": Entries})

    def close(self) -> None:
        self._pool.close()
