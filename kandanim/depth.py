"""Depth: estimators give relative inverse depth; the tracker maps it into [near, far].

Backends (SPEC §6): `heuristic` (no weights: image cues good enough for believable
parallax on landscapes), `flat` (constant depth: pure 2D moves), and the model backends
`midas` and `depth-anything` from `depth_models.py`, imported only when asked for.
"""

from __future__ import annotations

import math
from typing import Protocol

import cv2
import numpy as np

HEURISTIC_SIDE = 128  # the heuristic works on a small copy: its cues are low-frequency
PERCENTILES = (2.0, 98.0)  # robust range of the inverse depth, ignoring outliers


class DepthEstimator(Protocol):
    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 relative inverse depth of an RGB uint8 (H, W, 3) frame.

        Larger means nearer; scale and offset are arbitrary (the tracker normalises).
        """


class FlatDepth:
    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        return np.ones(image.shape[:2], dtype=np.float32)


class HeuristicDepth:
    """Depth cues of a landscape photograph, without weights.

    * vertical position: lower in the frame is nearer (the ground recedes to the horizon);
    * haze: the dark channel (per-pixel minimum over RGB, eroded) is high where air light
      veils the scene, i.e. far away and in the sky;
    * detail: fine texture survives only near the camera.
    The mix is smoothed at low resolution, which also keeps the warp free of speckle.
    """

    def __init__(self, vertical: float = 0.55, haze: float = 0.3, detail: float = 0.15) -> None:
        self.weights = (vertical, haze, detail)

    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        scale = HEURISTIC_SIDE / max(height, width)
        small_size = (max(int(round(width * scale)), 8), max(int(round(height * scale)), 8))
        small = cv2.resize(image, small_size, interpolation=cv2.INTER_AREA).astype(np.float32)
        small /= 255.0
        rows = np.linspace(0.0, 1.0, small.shape[0], dtype=np.float32)[:, None]
        vertical = np.broadcast_to(rows, small.shape[:2])
        dark = cv2.erode(small.min(axis=2), np.ones((5, 5), np.uint8))
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        detail = cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 2.0)
        detail /= max(float(detail.max()), 1e-6)
        w_vertical, w_haze, w_detail = self.weights
        cue = w_vertical * vertical + w_haze * (1.0 - dark) + w_detail * detail
        cue = cv2.GaussianBlur(cue, (0, 0), 1.5)
        return cv2.resize(cue, (width, height), interpolation=cv2.INTER_LINEAR)


def create_estimator(
    name: str, model_id: str | None = None, device: str = "cpu"
) -> DepthEstimator:
    """The estimator for a backend name; model backends load their weights here."""
    if name == "heuristic":
        return HeuristicDepth()
    if name == "flat":
        return FlatDepth()
    if name in ("midas", "depth-anything"):
        from kandanim.depth_models import create_model_estimator

        return create_model_estimator(name, model_id, device)
    raise ValueError(f"unknown depth backend {name!r}")


class DepthTracker:
    """Relative inverse depth → metric depth in [near, far], steady over time.

    The robust range (percentiles) of each frame's inverse depth is mapped linearly in
    inverse depth onto [1/far, 1/near], so the nearest visible point sits at `near`. The
    range is an exponential moving average over frames, so a frame whose estimate swings
    does not make the whole scene lurch nearer or farther (flicker).
    """

    def __init__(
        self, estimator: DepthEstimator, near: float, far: float, smoothing: float = 0.5
    ) -> None:
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.estimator = estimator
        self.smoothing = smoothing
        self.set_range(near, far)
        self.reset()

    def set_range(self, near: float, far: float) -> None:
        if not 0.0 < near < far:
            raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
        self.near, self.far = near, far

    def reset(self) -> None:
        self._low = math.nan
        self._high = math.nan

    def __call__(self, image: np.ndarray) -> np.ndarray:
        inverse = np.asarray(self.estimator.inverse_depth(image), dtype=np.float32)
        low, high = np.percentile(inverse[::4, ::4], PERCENTILES)
        if math.isnan(self._low):
            self._low, self._high = float(low), float(high)
        else:
            keep = self.smoothing
            self._low = keep * self._low + (1.0 - keep) * float(low)
            self._high = keep * self._high + (1.0 - keep) * float(high)
        span = max(self._high - self._low, 1e-6)
        normalised = np.clip((inverse - self._low) / span, 0.0, 1.0)
        inverse_metric = 1.0 / self.far + normalised * (1.0 / self.near - 1.0 / self.far)
        return (1.0 / inverse_metric).astype(np.float32)

    def state(self) -> dict[str, float]:
        return {"low": self._low, "high": self._high}

    def load_state(self, state: dict[str, object]) -> None:
        self._low = float(state.get("low", math.nan))  # type: ignore[arg-type]
        self._high = float(state.get("high", math.nan))  # type: ignore[arg-type]
