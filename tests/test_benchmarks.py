"""The benchmark harness (`python -m benchmarks`): discovery, failures as rows, the table.

No real benchmark runs here (they take minutes): fake `bench_*.py` modules in a temporary
package stand in for them. The Deforum-style baseline gets a smoke test on a tiny frame.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` is not installed

from benchmarks import __main__ as harness
from benchmarks import bench_quality
from benchmarks.common import Row, measure, measure_interleaved, row_passed

FAKE_MODULES = {
    "bench_good": """
        from benchmarks.common import Row
        def run():
            return [Row("fast thing", 42.0, "frames/s", "≥ 24", True, "fine"),
                    Row("slow thing", 3.5, "frames/s", "≥ 24", False)]
    """,
    "bench_legacy": """
        from dataclasses import dataclass
        @dataclass(frozen=True)
        class Row:  # a module's own fallback row, with the draft field name `ok`
            name: str
            value: float
            unit: str
            bar: str = ""
            ok: bool | None = None
            note: str = ""
        def run():
            return [Row("legacy", 1.0, "s", "≤ 2", True)]
    """,
    "bench_broken_import": """
        import a_module_that_does_not_exist
        def run():
            return []
    """,
    "bench_raises": """
        def run():
            raise RuntimeError("measuring went wrong")
    """,
    "bench_not_rows": """
        def run():
            return "nothing"
    """,
}


@pytest.fixture
def fake_package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    package = tmp_path / "fakebench"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("")  # not a bench_ module: never run
    for name, source in FAKE_MODULES.items():
        (package / f"{name}.py").write_text(textwrap.dedent(source))
    sys.path.insert(0, str(tmp_path))
    try:
        yield "fakebench", package
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == "fakebench" or m.startswith("fakebench.")]:
            del sys.modules[module]


def test_discover_finds_only_bench_modules(fake_package) -> None:
    _, folder = fake_package
    assert harness.discover(folder) == sorted(FAKE_MODULES)


def test_the_real_benchmarks_are_discovered() -> None:
    assert "bench_warp" in harness.discover()


def test_select_accepts_short_names_and_rejects_unknown_ones() -> None:
    available = ["bench_encode", "bench_warp"]
    assert harness.select(available, []) == available
    assert harness.select(available, ["warp", "bench_encode"]) == ["bench_warp", "bench_encode"]
    with pytest.raises(ValueError, match="encode, warp"):
        harness.select(available, ["wrap"])


def test_rows_of_a_good_module(fake_package) -> None:
    package, _ = fake_package
    rows = harness.run_module("bench_good", package)
    assert [row.name for row in rows] == ["fast thing", "slow thing"]
    assert [row.passed for row in rows] == [True, False]


def test_a_fallback_row_with_ok_is_read_as_passed(fake_package) -> None:
    package, _ = fake_package
    (row,) = harness.run_module("bench_legacy", package)
    assert isinstance(row, Row)
    assert row.passed is True and row.bar == "≤ 2"


@pytest.mark.parametrize(
    ("module", "stage", "message"),
    [
        ("bench_broken_import", "import", "a_module_that_does_not_exist"),
        ("bench_raises", "run", "measuring went wrong"),
        ("bench_not_rows", "run", "not a list"),
    ],
)
def test_a_failing_module_becomes_one_failed_row(fake_package, module, stage, message) -> None:
    package, _ = fake_package
    (row,) = harness.run_module(module, package)
    assert row.name == f"{module}: failed to {stage}"
    assert row.passed is False and math.isnan(row.value)
    assert message in row.note


_original_run_module = harness.run_module


def use_fake_package(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    monkeypatch.setattr(harness, "discover", lambda folder=None: sorted(FAKE_MODULES))
    monkeypatch.setattr(harness, "run_module", lambda name: _original_run_module(name, package))


def test_main_prints_one_table_and_fails_when_a_module_failed(
    fake_package, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package, _ = fake_package
    use_fake_package(monkeypatch, package)

    status = harness.main(["good", "raises"])

    out = capsys.readouterr().out
    assert status == 1
    assert "fast thing" in out and "bench_raises: failed to run" in out
    assert "legacy" not in out  # not selected
    assert out.count("kandanim benchmarks") == 1


def test_main_succeeds_when_every_module_runs(
    fake_package, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package, _ = fake_package
    use_fake_package(monkeypatch, package)
    assert harness.main(["good", "legacy"]) == 0
    assert "FAIL" in capsys.readouterr().out  # a missed bar is a verdict, not an error


def test_main_rejects_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert harness.main(["no-such-benchmark"]) == 2
    assert "no benchmark" in capsys.readouterr().err


def test_main_passes_size_to_the_modules_and_needs_a_value(
    fake_package, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    package, _ = fake_package
    use_fake_package(monkeypatch, package)
    monkeypatch.setenv("KANDANIM_BENCH_SIZE", "full")  # restored after the test
    assert harness.main(["good", "--size", "small"]) == 0
    assert os.environ["KANDANIM_BENCH_SIZE"] == "small"
    assert harness.main(["good", "--size"]) == 2
    assert "--size needs a value" in capsys.readouterr().err


def quality_figures(effect: str, **values: float) -> bench_quality.Figures:
    defaults = {"detail": 0.8, "homography": 0.6, "homography_grey": 0.9}
    return bench_quality.Figures(
        "coffee", effect, (832, 448), 1.0, **{**defaults, **values},
        bands={"left": 0.7, "right": 0.2, "top": 1.1, "bottom": 0.9},
    )


def test_quality_rows_apply_the_issue_bars_where_they_belong() -> None:
    rows = {r.name.split(": ")[1]: r for r in bench_quality.rows_for(quality_figures("right"))}
    assert rows["detail kept"].bar == "≥ 70 %" and rows["detail kept"].passed
    assert rows["homography correlation"].passed
    worst = rows["band ratio (worst edge)"]
    assert worst.value == pytest.approx(0.2) and worst.passed is False  # the entering edge
    spin = {r.name.split(": ")[1]: r for r in bench_quality.rows_for(quality_figures("spin-cw"))}
    assert all(row.passed is None for row in spin.values())  # no bar for a spin
    lost = bench_quality.rows_for(quality_figures("orbit-left", homography=math.nan))
    assert [r.passed for r in lost if "homography" in r.name] == [False]  # NaN fails
    turn = bench_quality.rows_for(quality_figures("rotate-360", centre=0.2))
    assert [r.passed for r in turn if "centre" in r.name] == [False]


def test_quality_measures_a_real_preview(tmp_path: Path) -> None:
    """The plumbing on one small render: the rocket standing still stays sharp and straight."""
    (rocket,) = [s for s in bench_quality.SOURCES if s.name == "rocket"]
    figures = bench_quality.measure(rocket, "in-place", "small", tmp_path)
    assert figures.size == (256, 128)
    assert figures.detail > 0.7
    assert figures.straightness < 1.0
    assert math.isnan(figures.centre)


def test_the_resampler_loop_ranks_bilinear_below_lanczos() -> None:
    """48 frames of a truck on a 128×64 photo: compounding bilinear blur is measured."""
    import cv2
    import skimage.data

    first = cv2.resize(skimage.data.coffee(), (128, 64), interpolation=cv2.INTER_AREA)
    kept = {
        name: bench_quality.resampler_loop(first, "right", name).detail
        for name in ("bilinear", "lanczos4")
    }
    assert kept["bilinear"] < 0.6 < kept["lanczos4"]


def test_measure_returns_the_median_of_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    # a fake clock: real sleeps of a few ms are off by several ms on a loaded machine
    from types import SimpleNamespace

    from benchmarks import common

    clock = [0.0]
    durations = iter([0.5, 0.5, 0.001, 0.003, 0.002])  # two warm-up calls, then three

    def fake_call() -> None:
        clock[0] += next(durations)

    monkeypatch.setattr(common, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    assert measure(fake_call, repeats=3, warmup=2) == pytest.approx(0.002)
    with pytest.raises(ValueError):
        measure(fake_call, repeats=0)


def test_measure_interleaved_times_every_function() -> None:
    calls = {"a": 0, "b": 0}

    def count(name: str):
        return lambda: calls.__setitem__(name, calls[name] + 1)

    seconds = measure_interleaved({"a": count("a"), "b": count("b")}, rounds=3, repeats=2, warmup=1)
    assert set(seconds) == {"a", "b"} and all(value >= 0 for value in seconds.values())
    assert calls == {"a": 7, "b": 7}


def test_row_passed_reads_either_field() -> None:
    assert row_passed(Row("x", 1.0, "s", passed=False)) is False
    assert row_passed(type("Legacy", (), {"ok": True})()) is True
    assert row_passed(object()) is None


def test_format_value() -> None:
    assert harness.format_value(1234.5) == "1,234"  # banker's rounding of .5 is fine
    assert harness.format_value(42.25) == "42.2"
    assert harness.format_value(3.14159) == "3.14"
    assert harness.format_value(7) == "7"
    assert harness.format_value(math.nan) == "—"


def test_deforum_baseline_warps_a_frame() -> None:
    """Smoke test of the baseline: uint8 in and out, identity is (nearly) identity and a
    sideways move shifts the picture."""
    from benchmarks.deforum_baseline import deforum_warp

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    depth = np.full((32, 48), 5.0, dtype=np.float32)
    same = deforum_warp(image, depth, np.eye(3), np.zeros(3))
    assert same.shape == image.shape and same.dtype == np.uint8
    assert np.abs(same.astype(int) - image.astype(int)).max() <= 1
    moved = deforum_warp(image, depth, np.eye(3), np.array([0.5, 0.0, 0.0]))
    assert np.abs(moved.astype(int) - image.astype(int)).mean() > 10


def test_gpu_benchmark_smoke_runs_the_real_loop_on_scaled_down_configs():
    """`python -m benchmarks gpu` on a CPU: the same code path at the tiny size."""
    from benchmarks import bench_gpu

    rows = bench_gpu.run(bench_gpu.MODES["tiny"], dtypes=("bf16",))
    names = [row.name for row in rows]
    assert all("(tiny mode: scaled-down configs, CPU)" in name for name in names)
    frames = {row.name: row for row in rows if row.unit == "s"}
    assert len(frames) == 2 and all(0 < row.value < 60 for row in frames.values())
    holes = next(name for name in frames if "(holes" in name)
    assert "(no holes: 0.0 %" in " ".join(frames) and "(holes: 0.0 %" not in holes
    shares = [row.value for row in rows if row.unit == "%"]
    assert len(shares) == 2 and all(0 <= share <= 100 for share in shares)
    assert all(row.passed is None for row in rows)  # bars are for the real sizes on a GPU


def test_gpu_benchmark_configurations_name_their_source():
    from benchmarks import bench_gpu

    real = bench_gpu.load_configs(scaled=False)
    assert real["kandinsky-2-2-decoder:unet"]["block_out_channels"] == [384, 768, 1152, 1536]
    assert real["kandinsky-2-2-decoder-inpaint:unet"]["in_channels"] == 9
    with torch.device("meta"):  # the published sizes, without allocating them
        sizes = bench_gpu.parameter_counts(bench_gpu._build(real))
    assert 1150 < sizes["inpaint"] < 1350  # the UNet: 1.22 B in Sber's model card
    assert 1200 < sizes["decoder"] < 1450  # UNet + MoVQ (67 M)
    assert 3000 < sizes["prior"] < 4000  # prior 1 B + CLIP ViT-bigG text and image towers
    assert 100 < sizes["midas"] < 150  # DPT-hybrid
    for file in bench_gpu.CONFIGS.glob("*.json"):
        sources = json.loads(file.read_text())["_source"]
        assert sources and all(s.startswith("https://huggingface.co/") for s in sources)
