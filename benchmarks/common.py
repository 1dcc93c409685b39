"""What every benchmark module shares: the table row and a robust timer.

Timings on these shared 2-core machines vary up to 3× from run to run, so `measure`
returns a median, and implementations are compared as ratios of medians taken in one
run, interleaved (`measure_interleaved`) so that a slow spell hits both sides alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table."""

    name: str
    value: float
    unit: str
    bar: str = ""  # the target, as text: "≥ 24", "≥ 2× (stretch 3×)"; empty if none
    passed: bool | None = None  # None: informational, no bar
    note: str = ""

    @property
    def ok(self) -> bool | None:
        """The draft name of `passed`, still used by some modules' fallback rows."""
        return self.passed


def measure(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls, after `warmup` calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1, got {repeats}")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure_interleaved(
    fns: Mapping[str, Callable[[], object]], rounds: int = 5, repeats: int = 5, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternating rounds.

    Each round times every function `repeats` times in turn; the result is the median
    over all samples, so background load during the run is shared fairly.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(repeats):
                started = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in samples.items()}


def row_passed(row: object) -> bool | None:
    """The verdict of a row from any module: `passed`, or `ok` in older fallback rows."""
    for field in ("passed", "ok"):
        if hasattr(row, field):
            value = getattr(row, field)
            return None if value is None else bool(value)
    return None
