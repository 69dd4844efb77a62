"""What the threads of a product's pipeline (pipeline.py, poster.py) hand one another through
their queues: a received batch from the reader to the settler, a settled batch from the settler
to the poster, a full publish that pauses the settler while the poster runs it, and the marker
that closes a queue."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg

from matcher import books
from matcher.books import OrderState
from matcher.settlement import BatchResult, Received

END = object()  # closes a queue: nothing follows


@dataclass
class ReceivedBatch:
    """One receive call's messages, parsed, with their orders as Postgres had them when the
    reader loaded them (None: the settler loads them itself)."""

    messages: list[dict[str, Any]]
    started: float  # perf_counter before and after the receive call
    ended: float
    batch: list[Received]
    rows: dict[str, OrderState] | None = None
    commits: int = 0  # batches the settler had committed when the rows were read
    load: float = 0.0  # seconds the reader spent loading them


@dataclass
class SettledBatch:
    """Received batches the settler committed in one transaction, for the poster."""

    parts: list[ReceivedBatch]
    result: BatchResult
    taken: float  # when the settler took the first part
    committed: float  # when its transaction had committed


@dataclass
class FullPublish:
    """The settler is paused until `done` is set: the poster may read its book and connection."""

    loaded: books.LoadedBook
    conn: psycopg.Connection
    done: threading.Event = field(default_factory=threading.Event)
