"""`python -m benchmarks [NAME …]`: run the `bench_*.py` modules and print one table.

With names (`warp`, `bench_warp`, …) only those modules run. `--size small` asks the
modules that have sizes (quality) for their quick variant, through `KANDANIM_BENCH_SIZE`. A module that fails to
import, raises, or returns something other than rows shows as a failed row with the
error, and the others still run; the exit status is then 1. Progress goes to stderr, the
table to stdout.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.common import Row, row_passed

PACKAGE_DIR = Path(__file__).resolve().parent
PREFIX = "bench_"


def discover(folder: Path = PACKAGE_DIR) -> list[str]:
    """Module names of the benchmarks in `folder`, sorted: `bench_*.py`."""
    return sorted(path.stem for path in folder.glob(f"{PREFIX}*.py"))


def select(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """The modules named in `wanted` (with or without the prefix); all if none named."""
    if not wanted:
        return list(available)
    chosen = []
    for name in wanted:
        module = name if name.startswith(PREFIX) else PREFIX + name
        if module not in available:
            raise ValueError(
                f"no benchmark {name!r}; available: "
                + ", ".join(m.removeprefix(PREFIX) for m in available)
            )
        chosen.append(module)
    return chosen


def run_module(name: str, package: str = "benchmarks") -> list[Row]:
    """The rows of one module; any failure becomes a single failed row."""
    try:
        module = importlib.import_module(f"{package}.{name}")
    except Exception as error:  # noqa: BLE001 — any import failure is reported, not raised
        return [_failed(name, "import", error)]
    try:
        rows = module.run()
        if not isinstance(rows, list):
            raise TypeError(f"run() returned {type(rows).__name__}, not a list of rows")
        return [as_row(row) for row in rows]
    except Exception as error:  # noqa: BLE001
        return [_failed(name, "run", error)]


def as_row(row: Any) -> Row:
    """Any row-like object (a module's own fallback dataclass too) as a `Row`."""
    if isinstance(row, Row):
        return row
    try:
        return Row(
            name=str(row.name),
            value=row.value,
            unit=str(row.unit),
            bar=str(getattr(row, "bar", "")),
            passed=row_passed(row),
            note=str(getattr(row, "note", "")),
        )
    except AttributeError as error:
        raise TypeError(f"not a benchmark row: {row!r}") from error


def _failed(module: str, stage: str, error: BaseException) -> Row:
    where = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    location = f" at {Path(where[0].filename).name}:{where[0].lineno}" if where else ""
    return Row(
        name=f"{module}: failed to {stage}", value=math.nan, unit="", bar="runs",
        passed=False, note=f"{type(error).__name__}: {error}{location}",
    )


def verdict(row: Row) -> str:
    if row.passed is None:
        return "—"
    return "[green]pass[/green]" if row.passed else "[red]FAIL[/red]"


def format_value(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if math.isnan(value):
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def build_table(rows: Sequence[Row], caption: str = "") -> Table:
    table = Table(title="kandanim benchmarks (SPEC §9)", caption=caption or None)
    table.add_column("benchmark")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("bar")
    table.add_column("verdict")
    table.add_column("note", overflow="fold")
    for row in rows:
        table.add_row(
            row.name, format_value(row.value), row.unit, row.bar, verdict(row), row.note
        )
    return table


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any module imports diffusers
    err = Console(stderr=True)
    if "--size" in args:  # passed to modules through the environment (bench_quality)
        at = args.index("--size")
        if at + 1 >= len(args):
            err.print("[red]error:[/red] --size needs a value: full or small")
            return 2
        os.environ["KANDANIM_BENCH_SIZE"] = args[at + 1]
        del args[at : at + 2]
    try:
        modules = select(discover(), args)
    except ValueError as error:
        err.print(f"[red]error:[/red] {error}")
        return 2
    rows: list[Row] = []
    failures = 0
    started = time.perf_counter()
    for name in modules:
        err.print(f"running {name} …")
        begun = time.perf_counter()
        module_rows = run_module(name)
        failures += any(row.name.startswith(f"{name}: failed") for row in module_rows)
        rows.extend(module_rows)
        err.print(f"  {name}: {len(module_rows)} rows in {time.perf_counter() - begun:.0f} s")
    caption = (
        f"{len(modules)} modules in {time.perf_counter() - started:.0f} s on "
        f"{os.cpu_count()} CPU cores; medians — timings vary up to 3× between runs"
    )
    Console(file=sys.stdout, width=160).print(build_table(rows, caption))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
