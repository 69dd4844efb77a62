"""What a product's pipeline counts while it runs: `Stats` per product (batches, messages,
trades, retries, the settler's idle time) and, when `Options.record_timings` is set, a `Cycle`
per settled batch with the time each stage spent on it. The poster fills them in as each batch's
messages are deleted; `Matcher.all_stats()` hands them to the benchmarks (benchmarks/e2e.py) and
the tests. Nothing in the matcher reads them back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cycle:
    """Timings of one settled batch (one transaction), seconds."""

    messages: int
    receive: float  # the receive call(s) that fetched it
    queued: float  # from received to taken by the settler
    prefetch: float  # the reader loading the batch's orders, while earlier batches settle
    load: float  # the settler loading them (only when the prefetch could not be used)
    match: float
    write: float
    publish: float
    delete: float
    detail: dict[str, float] = field(default_factory=dict)  # the write: w_build, w_commit
    # perf_counter when the batch had committed and when its market data was published, and its
    # messages' deduplication ids: an order's latency from its send (benchmarks/e2e.py).
    committed_at: float = 0.0
    published_at: float = 0.0
    dedup_ids: tuple[str, ...] = ()

    @property
    def settle(self) -> float:
        """The settler's time for the batch: load, match and write (commit included). The
        product's serial stage, so its throughput bound."""
        return self.load + self.match + self.write

    @property
    def processing(self) -> float:
        """All of the batch's work excluding SQS: the prefetch, settle and the Redis publish
        (those two run on the reader and poster threads, overlapped with other batches')."""
        return self.prefetch + self.settle + self.publish


@dataclass
class Stats:
    """One product's counters since its pipeline took the product."""

    batches: int = 0
    messages: int = 0
    trades: int = 0
    poison: int = 0
    retries: int = 0
    starved: float = 0.0  # seconds the settler waited for a batch, once the first had come
    first_at: float | None = None  # perf_counter at the start of the first non-empty receive
    last_at: float | None = None  # perf_counter at the end of the last batch
    cycles: list[Cycle] = field(default_factory=list)
