"""The product queues between the API and the matcher: their definition (`queues`: names,
attributes, dead-letter redrive), the messages on them (`order_queue`: what a message carries,
its message group and deduplication id), and the SQS clients (`sqs`: boto3 for administration,
`sqs_wire` for the per-message calls).

Rule: shared with the matcher; depends only on `platform`.
"""
