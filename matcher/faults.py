"""Fault injection for the crash tests, off unless MATCHER_FAULT is set.

MATCHER_FAULT="<point>:<n>" kills this process with SIGKILL (as `kill -9` would) the n-th time
the matcher reaches <point>: `before_commit` (inside the settlement transaction, after every
write, before COMMIT) or `after_commit` (committed, before Redis and DeleteMessageBatch).
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = frozenset({"before_commit", "after_commit"})


class Faults:
    def __init__(self, spec: str | None) -> None:
        self._point: str | None = None
        self._at = 0
        self._seen = 0
        self._lock = threading.Lock()
        if spec:
            point, _, n = spec.partition(":")
            if point not in POINTS or not n.isdigit() or int(n) < 1:
                raise ValueError(f"MATCHER_FAULT must be <{'|'.join(sorted(POINTS))}>:<n>")
            self._point, self._at = point, int(n)

    @classmethod
    def from_env(cls) -> Faults:
        return cls(os.environ.get("MATCHER_FAULT"))

    def hit(self, point: str) -> None:
        if point != self._point:
            return
        with self._lock:
            self._seen += 1
            if self._seen == self._at:
                os.kill(os.getpid(), signal.SIGKILL)
