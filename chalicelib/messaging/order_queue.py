"""The messages on a product's FIFO queue: what the API sends and the matcher reads.

A message names an order; the order itself is read from Postgres, which is the truth (a message
can be late, repeated or forged by nobody but us, and carries nothing the database does not).
Deduplication id = the order id for a new order and "cancel:<order id>" for its cancel, so a
retried send is delivered once.

Message groups: SQS FIFO hands out a group's next messages only once the previous ones are
deleted, so a product that were one group could never have more than one batch in flight, and
its rate would be bounded by receive + settle + delete done one after another. Each product's
queue is therefore split into GROUPS_PER_PRODUCT groups by account ("BTC-USD.7"): the matcher
receives one group's batch while it settles another's. What must stay ordered stays ordered:
an account's orders and cancels share a group, and the matcher sequences the product (price-time
priority is the order in which the matcher takes the messages). The mapping must not change while
messages are in flight, since deduplication is scoped to a group.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.messaging import queues
from chalicelib.platform.config import Settings

Kind = Literal["order", "cancel"]

GROUPS_PER_PRODUCT = 16


def group_id(product_id: str, user_id: str) -> str:
    """The message group of an account's messages on a product (stable: derived from the id)."""
    return f"{product_id}.{uuid.UUID(user_id).int % GROUPS_PER_PRODUCT}"


@dataclass(frozen=True, slots=True)
class QueueMessage:
    kind: Kind
    order_id: str
    product_id: str
    user_id: str  # the order's owner: it picks the message group

    @property
    def group_id(self) -> str:
        return group_id(self.product_id, self.user_id)

    @property
    def dedup_id(self) -> str:
        return self.order_id if self.kind == "order" else f"cancel:{self.order_id}"

    def body(self) -> str:
        return json.dumps(
            {
                "type": self.kind,
                "order_id": self.order_id,
                "product_id": self.product_id,
                "user_id": self.user_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def parse(cls, body: str) -> QueueMessage:
        """Raises ValueError for anything that is not one of our messages (a poison message)."""
        data = json.loads(body)
        if not isinstance(data, dict) or data.get("type") not in ("order", "cancel"):
            raise ValueError(f"not an order queue message: {body[:200]!r}")
        order_id, product_id, user_id = (data.get(k) for k in ("order_id", "product_id", "user_id"))
        if not (
            isinstance(order_id, str) and isinstance(product_id, str) and isinstance(user_id, str)
        ):
            raise ValueError(f"message lacks order_id/product_id/user_id: {body[:200]!r}")
        return cls(data["type"], order_id, product_id, user_id)


def queue_url(sqs: Any, cfg: Settings, product_id: str) -> str:
    return str(
        sqs.get_queue_url(QueueName=queues.queue_name(cfg.queue_prefix, product_id))["QueueUrl"]
    )


def send(sqs: Any, url: str, message: QueueMessage) -> None:
    sqs.send_message(
        QueueUrl=url,
        MessageBody=message.body(),
        MessageGroupId=message.group_id,
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
                "MessageGroupId": m.group_id,
                "MessageDeduplicationId": m.dedup_id,
            }
            for i, m in enumerate(messages)
        ],
    )
    return [messages[int(f["Id"])] for f in reply.get("Failed", [])]
