"""Depth: estimators give relative inverse depth; the tracker maps it into [near, far]."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class DepthEstimator(Protocol):
    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 relative inverse depth of an RGB uint8 (H, W, 3) frame.

        Larger means nearer; scale and offset are arbitrary (the tracker normalises).
        """
