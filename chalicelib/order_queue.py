"""The messages on a product's FIFO queue: what the API sends and the matcher reads.

A message names an order; the order itself is read from Postgres, which is the truth (a message
can be late, repeated or forged by nobody but us, and carries nothing the database does not).
Group id = product id (one ordered stream per product); deduplication id = the order id for a
new order and "cancel:<order id>" for its cancel, so a retried send is delivered once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib import queues
from chalicelib.config import Settings

Kind = Literal["order", "cancel"]


@dataclass(frozen=True, slots=True)
class QueueMessage:
    kind: Kind
    order_id: str
    product_id: str

    @property
    def dedup_id(self) -> str:
        return self.order_id if self.kind == "order" else f"cancel:{self.order_id}"

    def body(self) -> str:
        return json.dumps(
            {"type": self.kind, "order_id": self.order_id, "product_id": self.product_id},
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, body: str) -> QueueMessage:
        """Raises ValueError for anything that is not one of our messages (a poison message)."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("type") not in ("order", "cancel"):
            raise ValueError(f"not an order queue message: {body[:200]!r}")
        order_id, product_id = data.get("order_id"), data.get("product_id")
        if not isinstance(order_id, str) or not isinstance(product_id, str):
            raise ValueError(f"message lacks order_id/product_id: {body[:200]!r}")
        return cls(data["type"], order_id, product_id)


def queue_url(sqs: Any, cfg: Settings, product_id: str) -> str:
    return str(
        sqs.get_queue_url(QueueName=queues.queue_name(cfg.queue_prefix, product_id))["QueueUrl"]
    )


def send(sqs: Any, url: str, message: QueueMessage) -> None:
    sqs.send_message(
        QueueUrl=url,
        MessageBody=message.body(),
        MessageGroupId=message.product_id,
        MessageDeduplicationId=message.dedup_id,
    )


def send_batch(sqs: Any, url: str, messages: list[QueueMessage]) -> list[QueueMessage]:
    """Send up to 10 messages in one call; returns those SQS did not accept (to retry later)."""
    if not messages:
        return []
    reply = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {
                "Id": str(i),
                "MessageBody": m.body(),
                "MessageGroupId": m.product_id,
                "MessageDeduplicationId": m.dedup_id,
            }
            for i, m in enumerate(messages)
        ],
    )
    return [messages[int(f["Id"])] for f in reply.get("Failed", [])]
