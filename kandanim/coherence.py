"""Temporal coherence: keep colours from drifting across frames, counter progressive blur.

Diffusion loops drift in colour (saturation creeps, tints build up) and each warp
resamples, softening the picture. Matching every frame's LAB histograms to the scene's
first frame holds the palette; an optional unsharp mask restores edges.
"""

from __future__ import annotations

import cv2
import numpy as np

_LEVELS = np.arange(256, dtype=np.float32)


class ColourReference:
    """A reference frame's LAB cumulative histograms, computed once per scene."""

    def __init__(self, reference: np.ndarray) -> None:
        lab = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
        self.cdfs = [_cdf(lab[..., c]) for c in range(3)]

    def match(self, image: np.ndarray) -> np.ndarray:
        """`image` with each LAB channel's histogram matched to the reference's."""
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
        channels = [
            cv2.LUT(lab[..., c], _transfer(_cdf(lab[..., c]), self.cdfs[c])) for c in range(3)
        ]
        return cv2.cvtColor(cv2.merge(channels), cv2.COLOR_LAB2RGB)


def match_colours(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`image` with each LAB channel's histogram matched to `reference`'s (RGB uint8)."""
    return ColourReference(reference).match(image)


def _transfer(source_cdf: np.ndarray, reference_cdf: np.ndarray) -> np.ndarray:
    """A 256-entry lookup table mapping source levels onto reference levels by CDF."""
    mapped = np.interp(source_cdf, reference_cdf, _LEVELS)
    return np.clip(mapped + 0.5, 0, 255).astype(np.uint8)


def _cdf(channel: np.ndarray) -> np.ndarray:
    histogram = cv2.calcHist([channel], [0], None, [256], [0, 256]).ravel()
    cdf = np.cumsum(histogram)
    return cdf / cdf[-1]


def unsharp(image: np.ndarray, amount: float, radius: float = 1.0) -> np.ndarray:
    """Unsharp mask: image + amount × (image − blur(image)); amount 0 returns the image."""
    if amount <= 0:
        return image
    blurred = cv2.GaussianBlur(image, (0, 0), radius)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0)
