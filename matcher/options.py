"""The matcher's tuning knobs, in one place: how the coordinator polls and sweeps (coordinator.py)
and how each product's pipeline receives and settles (pipeline.py). `exchange matcher`, the tests
and the benchmarks build one `Options` and hand it to `Matcher`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Options:
    wait_s: int = 2  # long-poll wait per receive; also the worst-case shutdown latency
    poll_s: float = 1.0  # how often the coordinator tries to take unowned products
    sweep_every_s: float = 2.0
    sweep_after_s: float = 5.0  # a pending order older than this is presumed unsent
    sweep_force_s: float = 30.0  # sweep even a busy product this often
    receivers: int = 2  # receive calls in flight per product (each from other groups)
    # Received batches waiting for the settler, at most. Under load a receive takes longer than a
    # settle (benchmarks/e2e.py), so a few batches in hand keep the settler from waiting for the
    # next one.
    prefetch: int = 4
    merge: int = 1  # received batches the settler may settle in one transaction
    record_timings: bool = False  # keep every cycle's timings (benchmarks)
