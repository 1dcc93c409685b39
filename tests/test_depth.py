"""Depth backends and the tracker that maps them into [near, far] (SPEC §4, §6)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from kandanim.depth import (
    DepthTracker,
    FlatDepth,
    HeuristicDepth,
    create_estimator,
)
from kandanim.procedural import procedural_scene

NEAR, FAR = 1.0, 10.0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    def ranks(values: np.ndarray) -> np.ndarray:
        order = np.argsort(values.ravel(), kind="stable")
        result = np.empty(order.size)
        result[order] = np.arange(order.size)
        return result

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


class ArrayEstimator:
    """Returns the arrays it is given, one per call (the last one repeats)."""

    def __init__(self, *maps: np.ndarray) -> None:
        self.maps = list(maps)
        self.calls = 0

    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        result = self.maps[min(self.calls, len(self.maps) - 1)]
        self.calls += 1
        return result


FRAME = np.zeros((40, 50, 3), np.uint8)
RAMP = np.tile(np.linspace(0.0, 1.0, 50, dtype=np.float32), (40, 1))  # nearer to the right


# ----------------------------------------------------------------------------- heuristic


@pytest.mark.parametrize(("width", "height"), [(640, 640), (832, 448), (448, 832)])
def test_heuristic_orders_sky_hills_ground(width: int, height: int) -> None:
    estimator = HeuristicDepth()
    for variant in range(4):
        image, truth = procedural_scene(width, height, variant)
        estimate = estimator.inverse_depth(image)
        assert estimate.shape == (height, width) and estimate.dtype == np.float32
        sky = truth == truth.min()
        hills = (truth > 1 / 40) & (truth < 1 / 15)
        ground = np.zeros_like(sky)
        ground[int(height * 0.85):] = True
        ground &= truth > 0.4  # the ground itself, not a rock standing on it
        means = [float(estimate[region].mean()) for region in (sky, hills, ground)]
        assert means[0] < means[1] < means[2], (variant, means)


@pytest.mark.parametrize(("width", "height"), [(640, 640), (832, 448), (64, 64)])
def test_heuristic_agrees_with_true_depth(width: int, height: int) -> None:
    estimator = HeuristicDepth()
    for variant in range(4):
        image, truth = procedural_scene(width, height, variant)
        estimate = estimator.inverse_depth(image)
        assert _spearman(estimate[::2, ::2], truth[::2, ::2]) > 0.6, variant


def test_heuristic_depth_edges_follow_the_picture() -> None:
    """Edge-aware upsampling: depth jumps at a post's edge instead of ramping over it."""
    image = np.full((256, 256, 3), 200, np.uint8)  # pale hazy backdrop
    image[:, 120:136] = (60, 40, 30)  # a dark post down the middle
    row = HeuristicDepth().inverse_depth(image)[128]
    inside, outside = row[128], row[100]
    assert inside > outside  # dark and unhazy: nearer
    # most of the rise happens within a few pixels of the edges (the cues themselves are
    # computed at 160², where the post is 4 pixels wide and smoothed over 15)
    assert row[122] - row[117] > 0.5 * (inside - outside)
    assert row[138] - row[133] < -0.5 * (inside - outside)


def test_heuristic_is_deterministic_and_accepts_views() -> None:
    image, _ = procedural_scene(128, 96, 1)
    estimator = HeuristicDepth()
    flipped_twice = np.fliplr(np.fliplr(image))  # a non-contiguous view
    assert np.array_equal(estimator.inverse_depth(image), estimator.inverse_depth(image))
    assert np.array_equal(estimator.inverse_depth(image),
                          estimator.inverse_depth(image[:, ::-1][:, ::-1]))
    assert np.array_equal(estimator.inverse_depth(flipped_twice),
                          estimator.inverse_depth(image))


def test_estimators_reject_wrong_frames() -> None:
    for estimator in (HeuristicDepth(), FlatDepth()):
        with pytest.raises(ValueError, match="RGB uint8"):
            estimator.inverse_depth(np.zeros((8, 8), np.uint8))
        with pytest.raises(ValueError, match="RGB uint8"):
            estimator.inverse_depth(np.zeros((8, 8, 3), np.float32))


def test_flat_depth_is_constant_and_sits_at_near() -> None:
    flat = FlatDepth().inverse_depth(FRAME)
    assert flat.shape == (40, 50) and np.all(flat == flat[0, 0])
    depth = DepthTracker(FlatDepth(), NEAR, FAR)(FRAME)
    assert np.all(depth == NEAR)


# ----------------------------------------------------------------------------- factory


def test_create_estimator_by_name() -> None:
    assert isinstance(create_estimator("heuristic"), HeuristicDepth)
    assert isinstance(create_estimator("flat"), FlatDepth)
    with pytest.raises(ValueError, match="unknown depth backend 'midass'"):
        create_estimator("midass")


@pytest.mark.parametrize("name", ["midas", "depth-anything"])
def test_model_backends_come_from_depth_models(name: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    fake = types.ModuleType("kandanim.depth_models")

    def create_model_estimator(backend: str, model_id: str | None, device: str) -> object:
        calls.append((backend, model_id, device))
        return FlatDepth()

    fake.create_model_estimator = create_model_estimator  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kandanim.depth_models", fake)
    estimator = create_estimator(name, model_id="some/model", device="cuda")
    assert isinstance(estimator, FlatDepth)
    assert calls == [(name, "some/model", "cuda")]


def test_depth_module_imports_no_model_libraries() -> None:
    source = Path(__file__).parents[1].joinpath("kandanim", "depth.py").read_text()
    header = source.split("\ndef ", 1)[0]
    assert "import torch" not in header and "transformers" not in header.split('"""', 2)[-1]


# ----------------------------------------------------------------------------- tracker


def test_tracker_range_nearest_at_near_and_linear_in_inverse_depth() -> None:
    tracker = DepthTracker(ArrayEstimator(RAMP), NEAR, FAR, smoothing=0.0)
    depth = tracker(FRAME)
    assert depth.dtype == np.float32 and depth.shape == (40, 50)
    assert depth.min() == NEAR and depth.max() == FAR
    # between the 2nd and 98th percentiles, 1/depth is an affine function of the input
    inner = (RAMP > 0.03) & (RAMP < 0.97)
    slope, offset = np.polyfit(RAMP[inner], 1.0 / depth[inner], 1)
    fit = slope * RAMP[inner] + offset
    assert np.abs(fit - 1.0 / depth[inner]).max() < 1e-5
    assert slope > 0  # larger inverse depth from the estimator → nearer
    # outliers are clipped, not stretched over the range
    spiky = RAMP.copy()
    spiky[0, 0] = 1000.0
    spiky_depth = DepthTracker(ArrayEstimator(spiky), NEAR, FAR, smoothing=0.0)(FRAME)
    # (without robust percentiles the spike would push everything else to `far`)
    assert np.abs(1.0 / spiky_depth[1:] - 1.0 / depth[1:]).max() < 0.03


def test_tracker_output_stays_in_range_for_any_input() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.normal(size=(40, 50)).astype(np.float32) * scale + shift
            for scale, shift in ((1, 0), (100, -3), (1e-3, 5), (7, 7))]
    tracker = DepthTracker(ArrayEstimator(*maps), 0.5, 30.0)
    for _ in maps:
        depth = tracker(FRAME)
        assert depth.min() >= 0.5 and depth.max() <= 30.0


def test_tracker_resizes_estimates_to_the_frame() -> None:
    small = np.tile(np.linspace(0.0, 1.0, 10, dtype=np.float32), (8, 1))
    depth = DepthTracker(ArrayEstimator(small), NEAR, FAR)(FRAME)
    assert depth.shape == FRAME.shape[:2]
    assert depth[:, 0].mean() > depth[:, -1].mean()


def test_tracker_smooths_a_step_change() -> None:
    """A near object entering the frame moves the normalisation gradually, not at once."""
    with_object = RAMP.copy()
    with_object[:, :10] = 3.0  # a big near thing on the left: the 98th percentile jumps
    frames = [RAMP] * 5 + [with_object] * 20
    probe = (20, 30)  # a background pixel

    def history(smoothing: float) -> np.ndarray:
        tracker = DepthTracker(ArrayEstimator(*frames), NEAR, FAR, smoothing=smoothing)
        return np.array([tracker(FRAME)[probe] for _ in frames])

    sharp, smooth = history(0.0), history(0.5)
    before, after = sharp[4], sharp[-1]
    assert abs(after - before) > 0.5  # the step is real
    assert sharp[5] == pytest.approx(after)  # unsmoothed: all at once
    # smoothed: part of the way on the step frame, then steadily closer, converged later
    assert abs(smooth[5] - before) < 0.7 * abs(after - before)
    steps = np.diff(smooth[4:]) * np.sign(after - before)
    assert np.all(steps >= -1e-6)
    assert smooth[-1] == pytest.approx(after, rel=1e-3)


def test_tracker_damps_flicker_but_passes_real_changes() -> None:
    rng = np.random.default_rng(1)
    noisy = [RAMP + rng.normal(scale=0.02, size=RAMP.shape).astype(np.float32)
             for _ in range(12)]

    def spread(smoothing: float) -> float:
        tracker = DepthTracker(ArrayEstimator(*noisy), NEAR, FAR, smoothing=smoothing)
        stack = np.stack([1.0 / tracker(FRAME) for _ in noisy][2:])
        return float(stack.std(axis=0).mean())

    assert spread(0.5) < 0.8 * spread(0.0)
    # a large local change (something moved) is not smeared over frames
    moved = RAMP.copy()
    moved[:, 20:25] = 1.0
    tracker = DepthTracker(ArrayEstimator(RAMP, moved), NEAR, FAR, smoothing=0.5)
    tracker(FRAME)
    reference = DepthTracker(ArrayEstimator(moved), NEAR, FAR, smoothing=0.0)(FRAME)
    assert np.allclose(tracker(FRAME)[:, 20:25], reference[:, 20:25], rtol=0.05)


def test_tracker_state_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    maps = [RAMP * rng.uniform(0.5, 2) + rng.normal(scale=0.05, size=RAMP.shape)
            for _ in range(10)]
    maps = [m.astype(np.float32) for m in maps]
    first = DepthTracker(ArrayEstimator(*maps), NEAR, FAR)
    for _ in range(5):
        first(FRAME)
    np.savez(tmp_path / "state.npz", **{k: np.asarray(v) for k, v in first.state().items()})
    with np.load(tmp_path / "state.npz") as saved:
        loaded = {k: (saved[k].item() if saved[k].ndim == 0 else saved[k]) for k in saved.files}

    resumed_estimator = ArrayEstimator(*maps)
    resumed_estimator.calls = 5
    resumed = DepthTracker(resumed_estimator, NEAR, FAR)
    resumed.load_state(loaded)
    for _ in range(5):
        assert np.array_equal(first(FRAME), resumed(FRAME))


def test_fresh_state_and_reset_behave_like_a_new_tracker() -> None:
    maps = [RAMP, RAMP * 3 + 1, RAMP ** 2]
    fresh = DepthTracker(ArrayEstimator(*maps), NEAR, FAR)
    restored = DepthTracker(ArrayEstimator(*maps), NEAR, FAR)
    restored.load_state(fresh.state())
    assert np.array_equal(fresh(FRAME), restored(FRAME))

    used = DepthTracker(ArrayEstimator(RAMP * 5, *maps), NEAR, FAR)
    used(FRAME)
    used.reset()
    again = DepthTracker(ArrayEstimator(*maps), NEAR, FAR)
    for _ in maps:
        assert np.array_equal(used(FRAME), again(FRAME))


def test_set_range_and_validation() -> None:
    tracker = DepthTracker(ArrayEstimator(RAMP), NEAR, FAR, smoothing=0.0)
    tracker.set_range(2.0, 4.0)
    depth = tracker(FRAME)
    assert depth.min() == 2.0 and depth.max() == 4.0
    for near, far in ((0.0, 1.0), (3.0, 3.0), (5.0, 2.0)):
        with pytest.raises(ValueError, match="near"):
            tracker.set_range(near, far)
    with pytest.raises(ValueError, match="smoothing"):
        DepthTracker(ArrayEstimator(RAMP), NEAR, FAR, smoothing=1.0)


def test_tracker_on_the_procedural_scene_puts_the_ground_nearest() -> None:
    image, _ = procedural_scene(160, 96, 0)
    depth = DepthTracker(HeuristicDepth(), NEAR, FAR)(image)
    assert depth[-1].mean() < depth[0].mean()
    assert depth.min() == pytest.approx(NEAR) and depth.max() == pytest.approx(FAR)


def test_stable_estimators_skip_per_pixel_blending() -> None:
    """Heuristic/flat depth cannot flicker: only the percentiles are smoothed."""

    class Stable(ArrayEstimator):
        temporally_stable = True

    bumped = RAMP.copy()
    bumped[10:20, 10:20] += 0.05  # a small local change, within the motion threshold
    stable = DepthTracker(Stable(RAMP, bumped), NEAR, FAR)
    blending = DepthTracker(ArrayEstimator(RAMP, bumped), NEAR, FAR)
    stable(FRAME), blending(FRAME)
    fresh = DepthTracker(ArrayEstimator(bumped), NEAR, FAR)
    fresh.load_state({"low": stable.state()["low"], "high": stable.state()["high"],
                      "map": np.zeros((0, 0), np.float32)})
    expected = fresh(FRAME)  # the same percentile history, no map history
    assert np.array_equal(stable(FRAME), expected)
    assert not np.array_equal(blending(FRAME), expected)
    assert np.asarray(stable.state()["map"]).size == 0
    assert HeuristicDepth.temporally_stable and FlatDepth.temporally_stable


def test_tracker_survives_broken_estimates_and_old_states() -> None:
    broken = RAMP.copy()
    broken[0, :5] = np.nan
    broken[1, :5] = np.inf
    tracker = DepthTracker(ArrayEstimator(broken), NEAR, FAR)
    depth = tracker(FRAME)
    assert np.all(np.isfinite(depth)) and depth.min() >= NEAR and depth.max() <= FAR
    tracker.load_state({"low": 0.1, "high": 0.9})  # saved before maps were kept
    assert np.all(np.isfinite(tracker(FRAME)))
