"""The preview engine end to end (SPEC §9): heuristic depth, warp, fill, colour, encode.

Each measurement is a fresh process rendering a one-scene screenplay through the same
path as `kandanim render --engine preview` (work folder of resumable frames included), so
its peak RSS is the render's own. Bars: ≥ 24 frames/s at 640×640 (real time), and the
peak memory of a 60 s render within 10% of a 5 s one (frames stream; nothing accumulates).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row

REAL_TIME = 24.0
MEMORY_SLACK = 1.10


def render_once(seconds: float, resolution: str, effect: str) -> dict[str, float]:
    """Render in this process; return frames/s (excluding start-up) and peak RSS in MiB."""
    from kandanim.engines.preview import PreviewEngine
    from kandanim.jobs import NoProgress, RenderOptions, render_plan
    from kandanim.plan import build_plan
    from kandanim.screenplay import from_mapping

    document = {
        "version": 1, "fps": 24, "resolution": resolution, "seed": 1, "engine": "preview",
        "scenes": [{"prompt": "bench", "effect": effect, "duration": seconds}],
    }
    with tempfile.TemporaryDirectory() as folder:
        plan = build_plan(from_mapping(document, base_dir=Path(folder)), engine="preview")
        started = time.perf_counter()
        render_plan(
            plan, Path(folder) / "bench.mp4", PreviewEngine(),
            options=RenderOptions(engine="preview", resume=False), screenplay_text="",
            progress=NoProgress(), notify=lambda message: None,
        )
        elapsed = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"fps": plan.frame_count / elapsed, "peak_mib": peak_kib / 1024}


def _in_subprocess(seconds: float, resolution: str, effect: str) -> dict[str, float]:
    code = (
        "import json; from benchmarks.bench_preview import render_once; "
        f"print(json.dumps(render_once({seconds}, {resolution!r}, {effect!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run() -> list[Row]:
    rows: list[Row] = []
    for resolution, label in (("square", "640×640"), ("landscape", "832×448")):
        runs = [_in_subprocess(4.0, resolution, "orbit-right")["fps"] for _ in range(3)]
        fps = sorted(runs)[1]
        rows.append(Row(
            f"preview end to end {label} (orbit-right, mp4)", fps, "frames/s",
            f"≥ {REAL_TIME:g}" if resolution == "square" else "",
            fps >= REAL_TIME if resolution == "square" else None,
            "median of 3 fresh processes; includes saving resumable frames",
        ))
    short = _in_subprocess(5.0, "square", "zoom-out")
    long = _in_subprocess(60.0, "square", "zoom-out")
    ratio = long["peak_mib"] / short["peak_mib"]
    rows.append(Row("peak memory 5 s preview 640×640", short["peak_mib"], "MiB"))
    rows.append(Row("peak memory 60 s preview 640×640", long["peak_mib"], "MiB"))
    rows.append(Row(
        "peak memory 60 s / 5 s", ratio, "×", f"≤ {MEMORY_SLACK:.2f}", ratio <= MEMORY_SLACK,
        f"60 s render ran at {long['fps']:.1f} frames/s",
    ))
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
