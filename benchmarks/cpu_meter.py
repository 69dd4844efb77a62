"""CPU seconds spent by each party of a benchmark while it runs, read from /proc (Linux).

On a small machine the SQS stand-in, Postgres and the matcher share the cores, so how fast the
matcher drains a queue depends on how much CPU each of them spends per message. This counts it:

    with CpuMeter(database="exchange_bench_ab12") as meter:
        ...
    meter.seconds()  # {"matcher": 1.2, "matcher's SQS process": 0.7, "postgres": 0.9, ...}
    meter.seconds(t0, t1)  # between two perf_counter times: leaves out start-up and shutdown
    meter.machine(t0, t1)  # the whole machine's CPU seconds: {"busy": .., "stolen": .., "idle": ..}

Processes are sampled every `interval_s`, so each figure is right to about one interval.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from pathlib import Path
from types import TracebackType

_PROC = Path("/proc")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_and_parent(pid: int) -> tuple[float, int] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[1])


def backend_cpu(pid: int) -> float:
    """CPU seconds so far of one process (a Postgres backend, found by pg_backend_pid())."""
    found = _cpu_and_parent(pid)
    if found is None:
        raise LookupError(f"no process {pid}")
    return found[0]


def _machine() -> tuple[float, float, float]:
    """The machine's CPU seconds so far, all cores: (busy, stolen by the hypervisor, idle)."""
    fields = [int(v) for v in (_PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    busy = user + nice + system + irq + softirq
    return busy / _TICK, steal / _TICK, (idle + iowait) / _TICK


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds per party: this process ("matcher"), its children ("matcher's SQS
    process"), the Postgres backends of `database`, LocalStack and Redis."""

    available = _PROC.joinpath("self", "stat").exists()

    def __init__(self, database: str, interval_s: float = 0.1) -> None:
        self.database = database
        self.interval_s = interval_s
        self._me = os.getpid()
        self._party: dict[int, str | None] = {}  # pid -> party (None: not ours to count)
        self._samples: dict[int, list[tuple[float, float]]] = {}  # pid -> (perf_counter, cpu)
        self._machine: dict[str, list[tuple[float, float]]] = {
            kind: [] for kind in ("busy", "stolen", "idle")
        }  # kind -> (perf_counter, the machine's CPU seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-meter", daemon=True)

    def _classify(self, pid: int, parent: int) -> str | None:
        if pid == self._me:
            return "matcher"
        if parent == self._me:
            return "matcher's SQS process"
        cmd = _cmdline(pid)
        if cmd.startswith("postgres:") and f" {self.database} " in cmd:
            return "postgres"
        if "localstack" in cmd:
            return "localstack"
        if cmd.startswith(("redis-server", "valkey-server")):
            return "redis"
        return None

    def _sample(self) -> None:
        # New pids are classified once; only the counted ones are read again (cheap enough
        # that the meter's own CPU, charged to "matcher", stays small).
        for entry in os.scandir(_PROC):
            if entry.name.isdigit() and int(entry.name) not in self._party:
                pid = int(entry.name)
                read = _cpu_and_parent(pid)
                self._party[pid] = None if read is None else self._classify(pid, read[1])
        now = time.perf_counter()
        for kind, seconds in zip(self._machine, _machine(), strict=True):
            self._machine[kind].append((now, seconds))
        for pid, party in self._party.items():
            if party is not None:
                read = _cpu_and_parent(pid)
                if read is not None:
                    self._samples.setdefault(pid, []).append((now, read[0]))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> CpuMeter:
        if self.available:
            self._sample()
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
            self._sample()

    def seconds(self, start: float | None = None, end: float | None = None) -> dict[str, float]:
        """CPU seconds per party between two perf_counter times (default: the whole window),
        to the nearest sample; a process first seen after `start` counts from zero."""
        out: dict[str, float] = {}
        for pid, samples in self._samples.items():
            party = self._party[pid]
            assert party is not None
            first = samples[0][1] if start is None else _at(samples, start, born=0.0)
            out[party] = out.get(party, 0.0) + _at(samples, end) - first
        return out

    def machine(self, start: float | None = None, end: float | None = None) -> dict[str, float]:
        """The whole machine's CPU seconds between two perf_counter times, all cores: "busy"
        (every process, ours or not), "stolen" (by the hypervisor from this VM: on a shared
        host, the figures of a run it took much from are not comparable) and "idle"."""
        return {
            kind: _at(samples, end) - (samples[0][1] if start is None else _at(samples, start))
            for kind, samples in self._machine.items()
            if samples
        }


def machine_line(seconds: dict[str, float]) -> str:
    """Shares of the machine's CPU time: "busy 78%, stolen 9%, idle 13% of 2 cores"."""
    total = sum(seconds.values())
    if total <= 0:
        return "n/a (no /proc here)"
    shares = ", ".join(f"{k} {v / total:.0%}" for k, v in seconds.items())
    return f"{shares} of {os.cpu_count()} cores"


def _at(samples: list[tuple[float, float]], t: float | None, born: float | None = None) -> float:
    """The CPU counter at time t: the last sample at or before it (None: the last of all). Before
    the first sample: `born` if given (the process started later), else the first sample."""
    if t is None:
        return samples[-1][1]
    i = bisect.bisect_right(samples, t, key=lambda sample: sample[0])
    if i == 0:
        return samples[0][1] if born is None else born
    return samples[i - 1][1]
