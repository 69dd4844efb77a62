"""The per-message SQS client (chalicelib/messaging/sqs_wire.py) against the SQS endpoint, and its
signatures against an independent SigV4 check (LocalStack and moto accept any signature; AWS
does not)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.messaging import queues
from chalicelib.messaging.sqs import sqs_client
from chalicelib.messaging.sqs_wire import SqsError, SqsWire
from chalicelib.platform.config import Settings


def _queue(settings: Settings) -> str:
    return str(
        sqs_client(settings).get_queue_url(
            QueueName=queues.queue_name(settings.queue_prefix, "BTC-USD")
        )["QueueUrl"]
    )


def test_receive_release_and_delete_as_boto3_would(settings: Settings) -> None:
    boto, wire, url = sqs_client(settings), SqsWire(settings), _queue(settings)
    bodies = [str(uuid.uuid4()) for _ in range(3)]
    for body in bodies:
        boto.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body
        )

    def receive() -> list[dict[str, object]]:
        reply = wire.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            AttributeNames=["ApproximateReceiveCount"],
        )
        return list(reply.get("Messages", []))

    got = receive()
    assert [m["Body"] for m in got] == bodies
    assert all(m["Attributes"] == {"ApproximateReceiveCount": "1"} for m in got)
    assert all(m["MD5OfBody"] == hashlib.md5(str(m["Body"]).encode()).hexdigest() for m in got)
    assert receive() == []  # the group is in flight

    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    released = wire.change_message_visibility_batch(
        QueueUrl=url, Entries=[{**e, "VisibilityTimeout": 0} for e in entries]
    )
    assert sorted(s["Id"] for s in released["Successful"]) == ["0", "1", "2"]
    again = receive()
    assert [m["Body"] for m in again] == bodies
    assert all(m["Attributes"] == {"ApproximateReceiveCount": "2"} for m in again)

    deleted = wire.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(again)],
    )
    assert sorted(s["Id"] for s in deleted["Successful"]) == ["0", "1", "2"]
    assert deleted.get("Failed", []) == []
    wire.change_message_visibility_batch(
        QueueUrl=url, Entries=[{**e, "VisibilityTimeout": 0} for e in entries]
    )
    assert receive() == []  # deleted for good: releasing stale handles brings nothing back


def test_send_and_send_batch_as_boto3_would(settings: Settings) -> None:
    """What the API and the sweeper send: boto3 receives it, and a repeated deduplication id
    is one message."""
    boto, wire, url = sqs_client(settings), SqsWire(settings), _queue(settings)
    first = str(uuid.uuid4())
    sent = wire.send_message(
        QueueUrl=url, MessageBody=first, MessageGroupId="g", MessageDeduplicationId=first
    )
    again = wire.send_message(
        QueueUrl=url, MessageBody=first, MessageGroupId="g", MessageDeduplicationId=first
    )
    assert sent["MessageId"] == again["MessageId"]  # the same message, kept once
    assert sent["MD5OfMessageBody"] == hashlib.md5(first.encode()).hexdigest()
    rest = [str(uuid.uuid4()) for _ in range(3)]
    batch = wire.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "MessageBody": b, "MessageGroupId": "g", "MessageDeduplicationId": b}
            for i, b in enumerate(rest)
        ],
    )
    assert sorted(s["Id"] for s in batch["Successful"]) == ["0", "1", "2"]
    assert batch.get("Failed", []) == []
    got = boto.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    assert [m["Body"] for m in got["Messages"]] == [first, *rest]


def test_an_unknown_queue_is_an_error_with_its_code(settings: Settings) -> None:
    with pytest.raises(SqsError) as raised:
        SqsWire(settings).receive_message(QueueUrl=_queue(settings) + "-missing.fifo")
    assert raised.value.code == "QueueDoesNotExist"
    assert raised.value.status == 400


# --- signatures ---------------------------------------------------------------------------


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _expected_signature(
    secret: str, method: str, path: str, headers: dict[str, str], body: bytes
) -> str:
    """AWS Signature Version 4 as the AWS documentation defines it, written out here rather than
    taken from botocore, so that the check does not share the signer's mistakes."""
    auth = headers["authorization"]
    fields = dict(part.strip().split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    signed = fields["SignedHeaders"].split(";")
    _, date, region, service, _ = fields["Credential"].split("/")
    canonical = "\n".join(
        [
            method,
            path,
            "",
            "".join(f"{h}:{' '.join(headers[h].split())}\n" for h in signed),
            ";".join(signed),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            headers["x-amz-date"],
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class _CheckingSqs(ThreadingHTTPServer):
    secret = "right-secret"
    seen: list[dict[str, str]]
    broken = False  # answer like a failing proxy: 502 with an HTML page


class _Handler(BaseHTTPRequestHandler):
    server: _CheckingSqs

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.server.seen.append(headers)
        if self.server.broken:
            page = b"<html>bad gateway</html>"
            self.send_response(502)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        given = headers["authorization"].rsplit("Signature=", 1)[1]
        want = _expected_signature(self.server.secret, "POST", self.path, headers, body)
        status, reply = (
            (200, {"Messages": []})
            if hmac.compare_digest(given, want)
            else (403, {"__type": "com.amazonaws.sqs#SignatureDoesNotMatch", "message": "no"})
        )
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def checking_sqs() -> Iterator[_CheckingSqs]:
    server = _CheckingSqs(("127.0.0.1", 0), _Handler)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _prod(
    server: _CheckingSqs, monkeypatch: pytest.MonkeyPatch, secret: str, token: str | None = None
) -> Settings:
    """Settings of a real stage pointed at `server`, with credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    if token is None:
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    host, port = server.server_address[:2]
    return Settings("prod", "", "", f"http://{host}:{port}", "eu-west-1", "p")


def test_requests_carry_a_valid_signature_with_the_environment_credentials(
    checking_sqs: _CheckingSqs, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = SqsWire(_prod(checking_sqs, monkeypatch, "right-secret", "a-session-token"))
    assert wire.receive_message(QueueUrl="https://example.invalid/1/q.fifo") == {"Messages": []}
    headers = checking_sqs.seen[-1]
    assert headers["x-amz-target"] == "AmazonSQS.ReceiveMessage"
    assert headers["x-amz-security-token"] == "a-session-token"
    assert "/eu-west-1/sqs/aws4_request" in headers["authorization"]
    signed = headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "x-amz-security-token"} <= set(signed)


def test_a_wrong_secret_is_refused(
    checking_sqs: _CheckingSqs, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = SqsWire(_prod(checking_sqs, monkeypatch, "wrong-secret"))
    with pytest.raises(SqsError) as raised:
        wire.delete_message_batch(QueueUrl="q", Entries=[])
    assert (raised.value.code, raised.value.status) == ("SignatureDoesNotMatch", 403)


def test_a_failing_endpoint_is_retried_then_reported(
    checking_sqs: _CheckingSqs, monkeypatch: pytest.MonkeyPatch
) -> None:
    wire = SqsWire(_prod(checking_sqs, monkeypatch, "right-secret"))
    checking_sqs.broken = True
    with pytest.raises(SqsError) as raised:
        wire.receive_message(QueueUrl="q")
    assert (raised.value.code, raised.value.status) == ("BadReply", 502)
    assert len(checking_sqs.seen) == 4  # the first try and three retries
