"""Depth warp speed (SPEC §9): our forward warp + hole mask vs Deforum's 3D warp approach.

Both warp the same frame (the procedural landscape with its true depth mapped into
[1, 10], as the preview engine's depth tracker maps estimates) by the same gentle mixed
move (truck, pedestal, dolly, yaw, pitch, roll), from uint8 numpy to uint8 numpy. Ours is
`kandanim.warp.forward_warp` (z-buffered forward warp and disocclusion mask); the
baseline is `deforum_baseline.deforum_warp` (camera projection + `grid_sample`, no
mask). Timings are interleaved in rounds and the ratio of medians is the verdict:
*bar* ≥ 2×, stretch 3×.

Each library runs with its default threads (OpenCV and torch both use every core), as
in a render. On a machine shared with other work, extra threads can slow both sides
down a lot, so the same comparison is repeated with one thread each (informational).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from benchmarks.common import Row, measure_interleaved

SIZES = ((640, 640), (832, 448))
FOV_DEG, NEAR, FAR = 40.0, 1.0, 10.0
BAR, STRETCH = 2.0, 3.0
ROUNDS, REPEATS = 4, 5


def frame_and_depth(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The preview engine's first frame and its true depth, mapped into [NEAR, FAR] the
    way the depth tracker maps estimates: linearly in inverse depth, robust percentiles."""
    from kandanim.procedural import procedural_scene

    image, inverse = procedural_scene(width, height)
    low, high = np.percentile(inverse, (2.0, 98.0))
    normalised = np.clip((inverse - low) / (high - low), 0.0, 1.0)
    inverse_metric = 1.0 / FAR + normalised * (1.0 / NEAR - 1.0 / FAR)
    return image, (1.0 / inverse_metric).astype(np.float32)


def camera_move() -> tuple[np.ndarray, np.ndarray]:
    """One frame of a busy move: every axis at once, a few pixels of motion."""
    from kandanim.camera import Pose, relative_move

    return relative_move(Pose(), Pose(x=0.02, y=0.01, z=0.04, yaw=0.3, pitch=0.1, roll=0.1))


def contenders(width: int, height: int) -> dict[str, Callable[[], object]]:
    from benchmarks.deforum_baseline import deforum_warp
    from kandanim.camera import intrinsics
    from kandanim.warp import forward_warp

    image, depth = frame_and_depth(width, height)
    rotation, translation = camera_move()
    K = intrinsics(width, height, FOV_DEG)
    # Deforum's cameras take the row-vector world→view transform: X·Rᵀ + t.
    return {
        "ours": lambda: forward_warp(image, depth, K, rotation, translation),
        "baseline": lambda: deforum_warp(
            image, depth, rotation.T, translation, fov_deg=FOV_DEG, near=NEAR, far=FAR
        ),
    }


@contextmanager
def threads(count: int | None) -> Iterator[None]:
    """OpenCV and torch limited to `count` threads inside (None: leave the defaults)."""
    import cv2
    import torch

    before = cv2.getNumThreads(), torch.get_num_threads()
    if count is not None:
        cv2.setNumThreads(count)
        torch.set_num_threads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before[0])
        torch.set_num_threads(before[1])


def run() -> list[Row]:
    rows: list[Row] = []
    for width, height in SIZES:
        size = f"{width}×{height}"
        fns = contenders(width, height)
        with threads(None):
            seconds = measure_interleaved(fns, rounds=ROUNDS, repeats=REPEATS)
        ours, baseline = seconds["ours"], seconds["baseline"]
        ratio = baseline / ours
        rows += [
            Row(f"warp {size}: ours, forward warp + mask", 1.0 / ours, "frames/s",
                note=f"{ours * 1e3:.1f} ms per frame"),
            Row(f"warp {size}: Deforum-style 3D warp", 1.0 / baseline, "frames/s",
                note=f"{baseline * 1e3:.1f} ms per frame, no mask"),
            Row(f"warp {size}: ours vs Deforum-style", ratio, "×",
                f"≥ {BAR:g}× (stretch {STRETCH:g}×)", ratio >= BAR,
                "stretch met" if ratio >= STRETCH else "stretch not met"),
        ]
        with threads(1):
            single = measure_interleaved(fns, rounds=ROUNDS, repeats=REPEATS)
        rows.append(Row(
            f"warp {size}: ours vs Deforum-style, 1 thread each",
            single["baseline"] / single["ours"], "×",
            note=f"ours {single['ours'] * 1e3:.1f} ms, Deforum-style "
                 f"{single['baseline'] * 1e3:.1f} ms",
        ))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(f"{row.name:48s} {row.value:8.1f} {row.unit:9s} {row.bar:20s} {row.note}")
