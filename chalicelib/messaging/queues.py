"""The SQS FIFO queues: one per product plus its dead-letter queue, from one definition.

The local stack, the tests and the CDK app (infra/) all build queues from `queue_specs`, so the
attributes AWS gets are the ones the tests check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient  # type: ignore[import-not-found]

# A message that fails this many receives is poison: it goes to the DLQ and is logged.
MAX_RECEIVE_COUNT = 5
# Long enough for one batch's match + commit + publish even on a slow database.
VISIBILITY_TIMEOUT_S = 30
# Orders older than this are stale anyway; the sweeper re-sends pending ones from Postgres.
RETENTION_S = 4 * 24 * 3600
DLQ_RETENTION_S = 14 * 24 * 3600
LONG_POLL_S = 20


@dataclass(frozen=True, slots=True)
class QueueSpec:
    product_id: str
    name: str
    dlq_name: str

    def attributes(self) -> dict[str, str]:
        """Attributes of the main queue, without its RedrivePolicy (that needs the DLQ's ARN)."""
        return {
            "FifoQueue": "true",
            # We always send our own dedup id (the order or cancel id); content-based dedup
            # would merge two distinct orders whose bodies happen to be equal.
            "ContentBasedDeduplication": "false",
            # High-throughput FIFO: dedup and the throughput quota are per message group, and
            # each product's queue is split into groups by account (order_queue.group_id).
            "DeduplicationScope": "messageGroup",
            "FifoThroughputLimit": "perMessageGroupId",
            "VisibilityTimeout": str(VISIBILITY_TIMEOUT_S),
            "MessageRetentionPeriod": str(RETENTION_S),
            "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_S),
        }

    def dlq_attributes(self) -> dict[str, str]:
        return {
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "MessageRetentionPeriod": str(DLQ_RETENTION_S),
        }

    @staticmethod
    def redrive_policy(dlq_arn: str) -> str:
        return json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})


def queue_name(prefix: str, product_id: str, *, dlq: bool = False) -> str:
    return f"{prefix}-{product_id}{'-dlq' if dlq else ''}.fifo"


def queue_specs(prefix: str, product_ids: list[str]) -> list[QueueSpec]:
    return [
        QueueSpec(p, queue_name(prefix, p), queue_name(prefix, p, dlq=True)) for p in product_ids
    ]


def ensure_queues(sqs: SQSClient | Any, specs: list[QueueSpec]) -> dict[str, str]:
    """Create (or update) every queue and its DLQ; returns product id -> queue URL. Idempotent."""
    urls: dict[str, str] = {}
    for spec in specs:
        dlq_url = sqs.create_queue(QueueName=spec.dlq_name, Attributes=spec.dlq_attributes())[
            "QueueUrl"
        ]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        attributes = spec.attributes() | {"RedrivePolicy": spec.redrive_policy(dlq_arn)}
        url = sqs.create_queue(QueueName=spec.name, Attributes=spec.attributes())["QueueUrl"]
        # create_queue refuses differing attributes on an existing queue only for some keys;
        # setting them explicitly makes a re-run converge on the current definition.
        sqs.set_queue_attributes(
            QueueUrl=url,
            Attributes={k: v for k, v in attributes.items() if k != "FifoQueue"},
        )
        urls[spec.product_id] = url
    return urls


def delete_queues(sqs: SQSClient | Any, specs: list[QueueSpec]) -> None:
    """Delete every queue and DLQ of `specs` that exists (tests and benchmarks clean up after
    themselves: LocalStack slows down as queues pile up)."""
    for spec in specs:
        for name in (spec.name, spec.dlq_name):
            try:
                url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except sqs.exceptions.QueueDoesNotExist:
                continue
            sqs.delete_queue(QueueUrl=url)
