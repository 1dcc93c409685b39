"""Depth: estimators give relative inverse depth; the tracker maps it into [near, far].

* `HeuristicDepth` needs no weights (SPEC §6): it guesses inverse depth from cues that hold
  for landscapes — lower in the frame is nearer, hazier is farther (dark-channel prior),
  sharper is nearer — at a reduced resolution, then upsamples edge-aware with a fast
  guided filter so depth edges follow the picture's edges.
* `FlatDepth` is constant: every move becomes a pure 2D image motion.
* `create_estimator` picks a backend by name; the model backends ('midas',
  'depth-anything') live in `kandanim.depth_models` and are imported only when asked for,
  so this module never pulls in torch or transformers.
* `DepthTracker` turns any estimator's relative output into metric depth per SPEC §4:
  robust percentile normalisation, linear in inverse depth between 1/far and 1/near, and
  temporal smoothing so depth does not flicker. Its state can be saved for resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import cv2
import numpy as np

MODEL_BACKENDS = ("midas", "depth-anything")
BACKENDS = ("auto", "ground", "heuristic", "flat", *MODEL_BACKENDS)


class DepthEstimator(Protocol):
    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 relative inverse depth of an RGB uint8 (H, W, 3) frame.

        Larger means nearer; scale and offset are arbitrary (the tracker normalises).
        """


# An estimator may declare `temporally_stable = True` when its output is a smooth,
# deterministic function of the picture (no per-frame noise to damp): the tracker then
# skips per-pixel blending, which would only add lag. Model backends are assumed not to be.


def _check_frame(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")


class FlatDepth:
    """Constant inverse depth: the tracker puts the whole picture at `near`."""

    temporally_stable = True

    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        _check_frame(image)
        return np.ones(image.shape[:2], np.float32)


class GroundDepth:
    """A tilted plane: nearness rises linearly from the top row to the bottom one.

    The default for a user's photo in the preview (SPEC §7). A plane's inverse depth is
    linear in the pixel coordinates, so every camera move maps the picture by a
    homography: uprights stay straight, surfaces never tear, and a truck or pedestal
    still shows parallax (the bottom of the frame, nearer, moves more than the top).
    Measured on scikit-image's photos against `HeuristicDepth`, whose cues bend uprights
    into an S under orbits and trucks.

    Its output is already normalised (`normalised_output`): the tracker maps it into
    [near, far] as it is, so `top_nearness` sets how much nearer the bottom is than the
    top (0.75 with the default range 1..10: a depth ratio of 1.3, a gentle floor; at 0.5,
    1.8, orbits leaned a standing person or a tripod by 9° over 4 s, at 0.75 by about 4°).
    """

    temporally_stable = True
    normalised_output = True

    def __init__(self, top_nearness: float = 0.75) -> None:
        if not 0.0 <= top_nearness <= 1.0:
            raise ValueError(f"top_nearness must be in [0, 1], got {top_nearness}")
        self.top_nearness = float(top_nearness)

    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        _check_frame(image)
        height, width = image.shape[:2]
        rows = np.linspace(self.top_nearness, 1.0, height, dtype=np.float32)
        return np.repeat(rows[:, None], width, axis=1)


class HeuristicDepth:
    """Inverse depth from vertical position, haze and local detail; no weights.

    The frame is halved (area averaging, OpenCV's fast ×2 path) until its longer side is
    at most 1.5 × `work_side`; the cues are computed there. Depth edges are placed with a
    guided filter on the half-resolution picture, then upsampled to the frame: a few
    milliseconds whatever the frame size. The cue weights sum to 1; the result lies
    roughly in [0, 1].
    """

    temporally_stable = True  # a smooth function of the picture: nothing flickers

    def __init__(
        self,
        work_side: int = 160,
        vertical_weight: float = 0.5,
        haze_weight: float = 0.3,
        detail_weight: float = 0.2,
        edge_epsilon: float = 1e-2,
    ) -> None:
        self.work_side = work_side
        self.weights = (vertical_weight, haze_weight, detail_weight)
        # guided-filter regularisation: larger keeps depth smoother across texture
        self.edge_epsilon = edge_epsilon

    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        _check_frame(image)
        height, width = image.shape[:2]
        levels = _halvings(np.ascontiguousarray(image), self.work_side)
        fine = levels[1] if len(levels) > 1 else levels[0]  # half size, or the frame
        small = levels[-1]
        fine_grey = cv2.cvtColor(fine, cv2.COLOR_RGB2GRAY)
        small_grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        work_size = (small.shape[1], small.shape[0])

        vertical = _vertical_cue(work_size)
        haze = _haze_nearness(small)
        detail = _detail_cue(fine_grey, work_size)
        w_vertical, w_haze, w_detail = self.weights
        cue = (w_vertical * vertical + w_haze * haze + w_detail * detail).astype(np.float32)

        guide = small_grey.astype(np.float32) * (1.0 / 255.0)
        radius = max(2, round(min(work_size) / 24))
        result = _guided_upsample(guide, cue, fine_grey, radius, self.edge_epsilon)
        if result.shape != (height, width):
            result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
        return result


def _halvings(image: np.ndarray, work_side: int) -> list[np.ndarray]:
    """The frame, then area-averaged halves until the longer side ≤ 1.5 × work_side."""
    levels = [image]
    while max(levels[-1].shape[:2]) > 1.5 * work_side and min(levels[-1].shape[:2]) >= 16:
        height, width = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], ((width + 1) // 2, (height + 1) // 2),
                                 interpolation=cv2.INTER_AREA))
    return levels


def _vertical_cue(work_size: tuple[int, int]) -> np.ndarray:
    """0 at the top row, 1 at the bottom: on a landscape lower is nearer."""
    width, height = work_size
    ramp = (np.arange(height, dtype=np.float32) + 0.5) / height
    return np.repeat(ramp[:, None], width, axis=1)


def _haze_nearness(small: np.ndarray) -> np.ndarray:
    """1 - haze by the dark-channel prior: haze lifts the darkest channel toward the sky.

    `small` is the shrunken uint8 frame; the airlight is the brightest dark-channel level.
    """
    darkest = cv2.min(cv2.min(small[..., 0], small[..., 1]), small[..., 2])
    dark = cv2.erode(darkest, np.ones((3, 3), np.uint8)).astype(np.float32)
    airlight = max(float(np.percentile(dark, 99.5)), 1.0)
    return 1.0 - np.clip(dark * np.float32(1.0 / airlight), 0.0, 1.0)


def _detail_cue(grey: np.ndarray, work_size: tuple[int, int]) -> np.ndarray:
    """Local detail (Laplacian energy of `grey`, the half-size picture) pooled to the work
    size, robustly scaled to [0, 1]."""
    laplacian = cv2.convertScaleAbs(cv2.Laplacian(grey, cv2.CV_16S, ksize=1))
    energy = cv2.resize(laplacian, work_size, interpolation=cv2.INTER_AREA).astype(np.float32)
    energy = np.log1p(energy)
    energy = cv2.blur(energy, (5, 5))  # detail is a regional cue, not a per-pixel one
    low, high = np.percentile(energy, (2.0, 98.0))
    scaled = (energy - np.float32(low)) * np.float32(1.0 / max(float(high - low), 1e-6))
    return np.clip(scaled, 0.0, 1.0)


def _guided_upsample(guide: np.ndarray, source: np.ndarray, full_grey: np.ndarray,
                     radius: int, epsilon: float) -> np.ndarray:
    """Fast guided filter (He & Sun 2015): fit `source ≈ a·guide + b` per window at low
    resolution, upsample the smooth (a, b) and apply them to the finer guide `full_grey`
    (uint8), so depth edges land on the picture's edges."""
    size = (2 * radius + 1, 2 * radius + 1)
    mean_i = cv2.blur(guide, size)
    mean_p = cv2.blur(source, size)
    var_i = cv2.blur(guide * guide, size) - mean_i * mean_i
    cov_ip = cv2.blur(guide * source, size) - mean_i * mean_p
    a = cov_ip / (var_i + epsilon)
    b = mean_p - a * mean_i
    a = cv2.blur(a, size)
    b = cv2.blur(b, size)
    height, width = full_grey.shape
    a_full = cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(b, (width, height), interpolation=cv2.INTER_LINEAR)
    product = full_grey.astype(np.float32)
    np.multiply(product, a_full, out=product)
    return cv2.scaleAdd(product, 1.0 / 255.0, b_full)  # a · I + b, I in [0, 1]


def create_estimator(name: str, model_id: str | None = None,
                     device: str = "cpu") -> DepthEstimator:
    """The depth backend called `name` ('auto', 'ground', 'heuristic', 'flat', 'midas',
    'depth-anything'). 'auto' estimates like 'ground'; an engine that knows the true depth
    of a frame it made (the preview's built-in scene) uses that instead.

    Model backends are imported lazily from `kandanim.depth_models`; `model_id` (a hub id
    or a local folder) and `device` only matter to them.
    """
    if name in ("ground", "auto"):  # auto: the engine's own depth where it has one
        return GroundDepth()
    if name == "heuristic":
        return HeuristicDepth()
    if name == "flat":
        return FlatDepth()
    if name in MODEL_BACKENDS:
        from kandanim.depth_models import create_model_estimator  # torch only when asked

        return create_model_estimator(name, model_id, device)
    raise ValueError(f"unknown depth backend {name!r}; expected one of {', '.join(BACKENDS)}")


class DepthTracker:
    """Relative inverse depth → metric depth in [near, far], steady from frame to frame.

    Per frame: the estimator's inverse depth is normalised to [0, 1] between its 2nd and
    98th percentiles (clipped), and mapped linearly in inverse depth so that 1/depth spans
    [1/far, 1/near]; the nearest visible points sit at `near` (SPEC §4).

    Temporal smoothing, with `smoothing` the weight of the past (0 = none):

    * the two percentiles follow an exponential moving average, so the depth scale does
      not pump when something bright or near enters the frame;
    * the normalised map is blended with the previous one where the two nearly agree
      (small differences are flicker); where they differ by more than `motion_threshold`
      the new value passes through (real motion or a cut), so edges do not smear. This
      is skipped for estimators that declare `temporally_stable` (heuristic, flat).

    Call `reset()` at a cut. `state()` / `load_state()` carry everything needed for a
    resumed render to continue bit-identically.
    """

    def __init__(
        self,
        estimator: DepthEstimator,
        near: float,
        far: float,
        smoothing: float = 0.5,
        motion_threshold: float = 0.15,
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.estimator = estimator
        self.smoothing = float(smoothing)
        self.motion_threshold = float(motion_threshold)
        stable = bool(getattr(estimator, "temporally_stable", False))
        self._blends_maps = self.smoothing > 0 and not stable
        self.set_range(near, far)
        self.reset()

    def set_range(self, near: float, far: float) -> None:
        """Change the metric range (a scene's or frame's near/far)."""
        if not 0.0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        self.near, self.far = float(near), float(far)

    def reset(self) -> None:
        """Forget the past (use at a cut or a new scene)."""
        self._low: float | None = None
        self._high: float | None = None
        self._map: np.ndarray | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 metric depth of an RGB uint8 frame, in [near, far]."""
        normalised = self._update(image)
        # 1/depth = 1/far + normalised · (1/near - 1/far), in single OpenCV passes
        inverse = cv2.addWeighted(normalised, 1.0 / self.near - 1.0 / self.far, normalised,
                                  0.0, 1.0 / self.far)
        depth = cv2.divide(1.0, inverse)
        # float rounding can land a hair outside the range; the contract is exact bounds
        return np.clip(depth, self.near, self.far, out=depth)

    def normalised(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 in [0, 1], 1 = nearest, smoothed over time (updates the state)."""
        return self._update(image).copy()

    def _update(self, image: np.ndarray) -> np.ndarray:
        inverse = np.ascontiguousarray(self.estimator.inverse_depth(image), dtype=np.float32)
        height, width = image.shape[:2]
        if inverse.shape != (height, width):  # model backends may work at their own size
            inverse = cv2.resize(inverse, (width, height), interpolation=cv2.INTER_LINEAR)
        if getattr(self.estimator, "normalised_output", False):
            return inverse  # already in [0, 1] with a meaning of its own: keep it
        low, high = _robust_range(inverse)
        if not (np.isfinite(low) and np.isfinite(high)):  # a model produced NaN or inf
            inverse = np.nan_to_num(inverse, nan=0.0, posinf=0.0, neginf=0.0)
            low, high = _robust_range(inverse)
        if self._low is not None and self._high is not None:
            keep = self.smoothing
            low = keep * self._low + (1.0 - keep) * low
            high = keep * self._high + (1.0 - keep) * high
        self._low, self._high = low, high

        span = high - low
        if span <= 1e-6 * max(abs(high), abs(low), 1e-12):
            normalised = np.ones((height, width), np.float32)  # flat: everything is nearest
        else:
            normalised = cv2.addWeighted(inverse, 1.0 / span, inverse, 0.0, -low / span)
            np.clip(normalised, 0.0, 1.0, out=normalised)
        if self._blends_maps:
            if self._map is not None and self._map.shape == normalised.shape:
                normalised = self._blend_with_previous(normalised, self._map)
            self._map = normalised
        return normalised

    def _blend_with_previous(self, current: np.ndarray, previous: np.ndarray) -> np.ndarray:
        # weight of the past: `smoothing` where the maps agree, falling to 0 at the
        # threshold (OpenCV's element-wise ops: several times faster than numpy's here)
        keep = self.smoothing
        difference = cv2.absdiff(current, previous)
        weight = cv2.addWeighted(difference, -keep / self.motion_threshold, difference, 0.0,
                                 keep)
        _, weight = cv2.threshold(weight, 0.0, 0.0, cv2.THRESH_TOZERO)
        return cv2.add(current, cv2.multiply(cv2.subtract(previous, current), weight))

    def state(self) -> dict[str, np.ndarray | float]:
        """Everything the next frame depends on (empty map / NaN bounds before frame 1)."""
        nan = float("nan")
        return {
            "low": nan if self._low is None else self._low,
            "high": nan if self._high is None else self._high,
            "map": np.zeros((0, 0), np.float32) if self._map is None else self._map.copy(),
        }

    def load_state(self, state: Mapping[str, np.ndarray | float]) -> None:
        """Restore what `state()` returned (e.g. from an .npz) exactly; missing keys
        (a state saved by an older version) count as "no history"."""
        nan = float("nan")
        low = float(state.get("low", nan))  # type: ignore[arg-type]
        high = float(state.get("high", nan))  # type: ignore[arg-type]
        saved = np.asarray(state.get("map", np.zeros((0, 0))), dtype=np.float32)
        self._low = None if np.isnan(low) else low
        self._high = None if np.isnan(high) else high
        self._map = saved.copy() if saved.size else None


def _robust_range(inverse: np.ndarray) -> tuple[float, float]:
    """2nd and 98th percentiles, from a strided subsample (~16k values) for speed."""
    stride = max(1, int(np.sqrt(inverse.size / 16_000)))
    low, high = np.percentile(inverse[::stride, ::stride], (2.0, 98.0))
    return float(low), float(high)
