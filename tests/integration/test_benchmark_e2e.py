"""`benchmarks/e2e.py`, which measures the order path's throughput, runs end to end in a bounded
form: a few hundred orders, one drain, a two-second steady flow. The figures themselves are
measured, not tested (a timed assertion would fail on a slow host and prove nothing on a fast
one); this keeps the script that measures them working, and its books balanced."""

from __future__ import annotations

import os
import subprocess
import sys

from ops import services
from tests.conftest import ROOT, STATE_DIR


def test_the_e2e_benchmark_prints_every_figure_and_its_books_check(
    started_services: dict[str, services.Service],
) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "benchmarks/e2e.py",
            *("--orders", "200", "--repeat", "1", "--no-http"),
            *("--steady", "200", "--steady-seconds", "2"),
        ],
        cwd=ROOT,
        env={**os.environ, "EXCHANGE_STATE_DIR": str(STATE_DIR)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for line in (
        "the matcher's SQS process with no settler",
        "with a stand-in settler that waits 3 ms per batch using no CPU",
        "two bare loops at once",
        "run 1: bare one loop",
        "ratio matcher/bare",
        "the drain's CPU ceiling",
        "matcher, 3 products",
        "matcher, 1 product at a steady 200 orders/s for 2 s",
        "order sent -> committed",
        "order sent -> on the feed",
        "the last two lines follow each of",
        "settling alone (one connection; no SQS, Redis or other threads)",
        "exchange check: OK",
    ):
        assert line in run.stdout, run.stdout
