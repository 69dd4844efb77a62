"""A product's SQS traffic (receive, delete, release) in a child process of its own.

Why a process: an SQS call spends CPU holding the GIL. In the settler's process that CPU
delays the settler every time it comes back from a Postgres round trip, and the settler is the
product's serial stage; in another process it delays nothing. The child owns the SQS client
(sqs_wire.py); the worker talks to it over one pipe, with messages that are plain tuples:

  parent -> child: ("credit", n)              n more batches may be received
                   ("delete", token, handles)  delete these, answer ("deleted", ...)
                   ("release", handles)        make these visible again now
                   ("quiet",)                  stop receiving, answer ("quiet",)
                   ("stop",)                   exit after the commands before it
  child -> parent: ("batch", messages, t0, t1)  one receive's messages (perf_counter times:
                                               CLOCK_MONOTONIC, the same in both processes)
                   ("idle",)                   a receive came back empty
                   ("deleted", token, t0, t1, failed)
                   ("quiet",)  ("stopped",)  ("error", text)

Flow control: the child receives only while it holds credit (one per batch), and the worker
returns a credit each time its settler takes a batch, so received-but-unsettled batches stay
bounded (they are invisible to everyone else until deleted or released). The child dies with
its parent (PR_SET_PDEATHSIG): after a kill -9 the messages it held come back after the
visibility timeout, like any other unsettled message.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import asdict
from typing import Any

from chalicelib.platform.config import Settings
from chalicelib.platform.logs import logger

_PR_SET_PDEATHSIG = 1
NICE = 10  # the SQS process's CPU priority below the worker's (see _serve)


class SqsProcess:
    """The worker's handle on its child. `send` may be called from any thread; `recv` from
    one reader thread only."""

    def __init__(self, cfg: Settings, url: str, receivers: int, wait_s: int, credit: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._conn, child = ctx.Pipe(duplex=True)
        self._lock = threading.Lock()
        self.process = ctx.Process(
            target=_serve,
            args=(child, asdict(cfg), url, receivers, wait_s, credit),
            name="matcher-sqs",
            daemon=True,
        )
        self.process.start()
        child.close()

    def send(self, *message: Any) -> None:
        with self._lock:
            self._conn.send(message)

    def recv(self) -> tuple[Any, ...] | None:
        """The child's next message; None once it is gone."""
        try:
            return tuple(self._conn.recv())
        except (EOFError, OSError):
            return None

    def close(self, timeout: float = 10.0) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self._conn.close()


def _die_with_parent() -> None:
    # Not on Linux: the parent's pipe closing still stops us (EOF below).
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _serve(
    conn: Any, cfg_fields: dict[str, Any], url: str, receivers: int, wait_s: int, credit: int
) -> None:
    _die_with_parent()
    # Below the settler: its receives run ahead of the settler (prefetch), so a few ms of delay
    # cost nothing, while every ms the settler waits for a core is a ms of the product's
    # serial stage.
    with contextlib.suppress(OSError):
        os.nice(NICE)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from chalicelib.messaging.sqs_wire import SqsWire

    sqs = SqsWire(Settings(**cfg_fields), connections=receivers + 1)
    lock = threading.Lock()
    credits = threading.Semaphore(credit)
    quiet = threading.Event()

    def send(*message: Any) -> None:
        with lock:
            conn.send(message)

    def release(handles: list[str]) -> None:
        for i in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                    for n, h in enumerate(handles[i : i + 10])
                ],
            )

    def receive() -> None:
        try:
            while not quiet.is_set():
                if not credits.acquire(timeout=0.2):
                    continue
                t0 = time.perf_counter()
                reply = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=wait_s,
                    AttributeNames=["ApproximateReceiveCount"],
                )
                t1 = time.perf_counter()
                messages = reply.get("Messages", [])
                if not messages:
                    credits.release()
                    send("idle")
                elif quiet.is_set():
                    # Received after the worker stopped taking batches.
                    release([m["ReceiptHandle"] for m in messages])
                else:
                    send("batch", messages, t0, t1)
        except Exception as exc:
            logger.exception("SQS receive failed", extra={"queue_url": url})
            send("error", repr(exc))

    threads = [threading.Thread(target=receive, daemon=True) for _ in range(receivers)]
    for t in threads:
        t.start()
    try:
        while True:
            try:
                command = conn.recv()
            except (EOFError, OSError):
                return  # the parent is gone
            kind = command[0]
            if kind == "credit":
                credits.release(command[1])
            elif kind == "delete":
                _, token, handles = command
                t0 = time.perf_counter()
                failed: list[dict[str, Any]] = []
                for i in range(0, len(handles), 10):
                    reply = sqs.delete_message_batch(
                        QueueUrl=url,
                        Entries=[
                            {"Id": str(n), "ReceiptHandle": h}
                            for n, h in enumerate(handles[i : i + 10])
                        ],
                    )
                    failed += reply.get("Failed", [])
                send("deleted", token, t0, time.perf_counter(), failed)
            elif kind == "release":
                release(command[1])
            elif kind == "quiet":
                quiet.set()
                for t in threads:
                    t.join()
                send("quiet")
            elif kind == "stop":
                break
    except Exception as exc:
        logger.exception("SQS command failed", extra={"queue_url": url})
        send("error", repr(exc))
        return
    quiet.set()
    for t in threads:
        t.join()
    send("stopped")
