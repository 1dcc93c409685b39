"""Per-frame cost of the preview engine's image stages at 640×640 (SPEC §9, preview bar).

The preview must run end to end at ≥ 24 frames/s, i.e. 41.7 ms per frame for depth,
warp, fill, colour matching and encoding together, so each of these stages should cost a
few milliseconds. Rows:

* heuristic depth (estimator alone, and through the tracker that maps it into [1, 10]);
* hole filling on the masks real camera moves leave: one frame of the `zoom-out` preset
  (a new border ring) and of `orbit-right` (parallax slivers plus a side strip), with
  OpenCV's Telea inpainting on the same masks for comparison;
* LAB histogram matching against a precomputed reference;
* the procedural first frame at 832×448 (once per scene, not per frame).

Timings are medians (benchmarks.common.measure); the machines are shared, so compare
rows of one run rather than runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.common import Row, measure

SIZE = 640
FPS = 24
FOV_DEG, NEAR, FAR = 40.0, 1.0, 10.0
FRAME_BUDGET_MS = 1000.0 / FPS
STAGE_BAR_MS = 5.0  # "a few ms" per stage keeps the whole preview inside its budget
REPEATS = 15


def _frame() -> tuple[np.ndarray, np.ndarray]:
    from kandanim.depth import DepthTracker, HeuristicDepth
    from kandanim.procedural import procedural_scene

    image, _ = procedural_scene(SIZE, SIZE, variant=0)
    depth = DepthTracker(HeuristicDepth(), NEAR, FAR)(image)
    return image, depth


def masks(image: np.ndarray, depth: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(warped image, holes) for one frame of each preset move, as the render loop sees."""
    from kandanim.camera import Pose, intrinsics, relative_move
    from kandanim.warp import forward_warp

    moves = {
        "zoom-out border": Pose(z=-0.15 / FPS),
        "orbit-right parallax": Pose(x=0.1 / FPS, yaw=-0.1 / FPS * 57.3 / 2.0),
    }
    intrinsics_matrix = intrinsics(SIZE, SIZE, FOV_DEG)
    result = {}
    for name, pose in moves.items():
        rotation, translation = relative_move(Pose(), pose)
        warped = forward_warp(image, depth, intrinsics_matrix, rotation, translation)
        result[name] = (warped.image, warped.holes)
    return result


def _ms_row(name: str, fn: Callable[[], object], note: str = "",
            bar: bool = True, repeats: int = REPEATS) -> Row:
    ms = measure(fn, repeats=repeats) * 1e3
    share = f"{100 * ms / FRAME_BUDGET_MS:.0f}% of the 24 fps frame budget"
    return Row(name, ms, "ms/frame", f"≤ {STAGE_BAR_MS:g}" if bar else "",
               (ms <= STAGE_BAR_MS) if bar else None, "; ".join(filter(None, [note, share])))


def run() -> list[Row]:
    from kandanim.coherence import ColourReference
    from kandanim.depth import DepthTracker, HeuristicDepth
    from kandanim.fill import ClassicalFiller
    from kandanim.procedural import procedural_scene

    image, depth = _frame()
    size = f"{SIZE}×{SIZE}"
    estimator = HeuristicDepth()
    tracker = DepthTracker(estimator, NEAR, FAR)
    rows = [
        _ms_row(f"heuristic depth {size}", lambda: estimator.inverse_depth(image)),
        _ms_row(f"heuristic depth + tracker {size}", lambda: tracker(image),
                "percentiles, near/far mapping, temporal smoothing"),
    ]

    pyramid, telea = ClassicalFiller(), ClassicalFiller("telea")
    for name, (warped, holes) in masks(image, depth).items():
        share = f"holes {100 * holes.mean():.2f}% of the frame"
        rows.append(_ms_row(f"fill {size}, {name}: pyramid",
                            lambda w=warped, h=holes: pyramid.fill(w, h), share))
        rows.append(_ms_row(f"fill {size}, {name}: cv2.inpaint Telea",
                            lambda w=warped, h=holes: telea.fill(w, h),
                            "comparison only", bar=False, repeats=5))

    reference = ColourReference(image)
    drifted = np.clip(image.astype(np.int16) + (12, -6, 4), 0, 255).astype(np.uint8)
    rows.append(_ms_row(f"colour match (LAB histograms) {size}",
                        lambda: reference.match(drifted), "reference precomputed"))
    rows.append(_ms_row(f"colour reference (palette) {size}", lambda: ColourReference(image),
                        "once per scene", bar=False, repeats=5))
    rows.append(_ms_row("procedural first frame 832×448", lambda: procedural_scene(832, 448),
                        "once per scene", bar=False, repeats=5))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(f"{row.name:58s} {row.value:8.2f} {row.unit:9s} {row.bar:8s} {row.note}")
