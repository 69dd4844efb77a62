"""The product queues exist on the SQS endpoint with the settings the order path relies on."""

from __future__ import annotations

import json
import uuid

from chalicelib.core import catalog
from chalicelib.messaging import queues
from chalicelib.messaging.sqs import sqs_client
from chalicelib.platform.config import Settings


def _attrs(client: object, name: str) -> dict[str, str]:
    url = client.get_queue_url(QueueName=name)["QueueUrl"]  # type: ignore[attr-defined]
    return client.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=url, AttributeNames=["All"]
    )["Attributes"]


def test_one_fifo_queue_and_dlq_per_product(settings: Settings) -> None:
    client = sqs_client(settings)
    for product_id in catalog.PRODUCTS:
        main = _attrs(client, queues.queue_name(settings.queue_prefix, product_id))
        dlq = _attrs(client, queues.queue_name(settings.queue_prefix, product_id, dlq=True))
        assert main["FifoQueue"] == "true" and dlq["FifoQueue"] == "true"
        assert main["ContentBasedDeduplication"] == "false"
        assert main["DeduplicationScope"] == "messageGroup"
        assert main["FifoThroughputLimit"] == "perMessageGroupId"
        assert main["VisibilityTimeout"] == str(queues.VISIBILITY_TIMEOUT_S)
        assert main["ReceiveMessageWaitTimeSeconds"] == str(queues.LONG_POLL_S)
        redrive = json.loads(main["RedrivePolicy"])
        assert redrive == {
            "deadLetterTargetArn": dlq["QueueArn"],
            "maxReceiveCount": queues.MAX_RECEIVE_COUNT,
        }


def test_ensure_queues_is_idempotent(settings: Settings) -> None:
    specs = queues.queue_specs(settings.queue_prefix, list(catalog.PRODUCTS))
    client = sqs_client(settings)
    assert queues.ensure_queues(client, specs) == queues.ensure_queues(client, specs)


def test_fifo_order_and_deduplication(settings: Settings) -> None:
    client = sqs_client(settings)
    url = client.get_queue_url(QueueName=queues.queue_name(settings.queue_prefix, "BTC-USD"))[
        "QueueUrl"
    ]
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for order_id in [*ids, ids[1]]:  # the repeated send is a retry: it must not be delivered twice
        client.send_message(
            QueueUrl=url,
            MessageBody=order_id,
            MessageGroupId="BTC-USD",
            MessageDeduplicationId=order_id,
        )
    got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in got["Messages"]] == ids


def test_poison_message_moves_to_the_dlq(settings: Settings) -> None:
    client = sqs_client(settings)
    url = client.get_queue_url(QueueName=queues.queue_name(settings.queue_prefix, "ETH-USD"))[
        "QueueUrl"
    ]
    dlq = client.get_queue_url(
        QueueName=queues.queue_name(settings.queue_prefix, "ETH-USD", dlq=True)
    )["QueueUrl"]
    client.send_message(
        QueueUrl=url,
        MessageBody="poison",
        MessageGroupId="ETH-USD",
        MessageDeduplicationId="poison",
    )
    for _ in range(queues.MAX_RECEIVE_COUNT):
        got = client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1, VisibilityTimeout=0
        )
        assert [m["Body"] for m in got.get("Messages", [])] == ["poison"]
    # the next receive finds it over its limit and moves it
    assert client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []) == []
    moved = client.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)
    assert [m["Body"] for m in moved.get("Messages", [])] == ["poison"]
