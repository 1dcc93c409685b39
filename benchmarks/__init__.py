"""Benchmarks of SPEC §9: `python -m benchmarks [NAME …]` (or `make bench`) prints one table.

Each `benchmarks/bench_*.py` module exposes `run() -> list[Row]` (`benchmarks.common.Row`).
Timings on shared machines vary up to 3× from run to run: rows report medians, and
comparisons between implementations are ratios measured inside one run.
"""
