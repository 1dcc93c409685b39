"""A frame's colours as a few clusters, each with its own LAB histograms.

Colour coherence (`coherence.py`) matches every frame's LAB histograms to the scene's
first frame. Matched globally, a change of *composition* reads as a colour drift: after a
zoom-in shows less sky, the matching pushes the rest of the picture toward sky colours
(grey rocks turn blue). A `Palette` splits the reference into clusters of similar colour
(sky, foliage, grass, rock, …) and keeps each cluster's histograms, so the target for a
frame can be re-mixed with the frame's own cluster shares: less sky in the frame, less
sky in the target. A real drift (a tint, saturation creeping) still moves the frame's
colours away from their clusters' histograms and is corrected as before.

Everything is deterministic (no random initialisation), so a resumed render rebuilds the
same palette from the saved reference frame.
"""

from __future__ import annotations

import cv2
import numpy as np

CLUSTERS = 12  # colour clusters of a reference; 1 gives plain global histogram matching
SAMPLES = 8_000  # about this many reference pixels are clustered
HISTOGRAM_SAMPLES = 100_000  # … and about this many counted into the histograms
QUANT_BITS = 5  # cluster lookup table: 32 levels per RGB channel
_ITERATIONS = 8  # k-means refinement steps
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class Palette:
    """Cluster centres (k, 3) RGB float32 and per-cluster LAB histograms (k, 3, 256).

    Row `histograms[i, c]` counts channel `c` of the pixels in cluster `i`, as a share of
    the whole frame: each cluster's rows sum to its share, all clusters to 1.
    """

    def __init__(self, centres: np.ndarray, histograms: np.ndarray) -> None:
        centres = np.asarray(centres, np.float32)
        histograms = np.asarray(histograms, np.float64)
        count = centres.shape[0]
        if centres.shape != (count, 3) or histograms.shape != (count, 3, 256) or count < 1:
            raise ValueError(
                f"expected (k, 3) centres and (k, 3, 256) histograms, got {centres.shape} "
                f"and {histograms.shape}"
            )
        self.centres = centres
        self.histograms = histograms
        self._lookup = _nearest(_quantised_colours(), centres).astype(np.uint8)

    @classmethod
    def of(cls, image: np.ndarray, clusters: int = CLUSTERS) -> Palette:
        """The palette of an RGB uint8 frame."""
        if clusters < 1 or clusters > 255:
            raise ValueError(f"clusters must be in [1, 255], got {clusters}")
        palette = cls(_cluster(_sample(image, SAMPLES), clusters), np.zeros((clusters, 3, 256)))
        # the histograms want many more pixels than the clustering does
        pixels = _sample(image, HISTOGRAM_SAMPLES)
        labels = palette.labels(pixels)
        lab = cv2.cvtColor(pixels[None], cv2.COLOR_RGB2LAB)[0]
        for channel in range(3):
            keys = labels.astype(np.int64) * 256 + lab[:, channel]
            counts = np.bincount(keys, minlength=clusters * 256).reshape(clusters, 256)
            palette.histograms[:, channel] = counts / len(pixels)
        return palette

    def labels(self, pixels: np.ndarray) -> np.ndarray:
        """Nearest cluster of each RGB uint8 pixel (..., 3), via the lookup table."""
        shift = 8 - QUANT_BITS
        levels = (pixels >> shift).astype(np.int32)
        index = (levels[..., 0] << (2 * QUANT_BITS)) | (levels[..., 1] << QUANT_BITS)
        return self._lookup[index | levels[..., 2]]

    def shares(self, image: np.ndarray) -> np.ndarray:
        """(k,) share of `image`'s pixels (RGB uint8, any shape (..., 3)) in each cluster."""
        counts = np.bincount(self.labels(image).ravel(), minlength=len(self.centres))
        return counts / max(int(counts.sum()), 1)

    def expected_histograms(self, image: np.ndarray) -> np.ndarray:
        """(3, 256) LAB histograms this palette would have with `image`'s composition:
        each cluster's own histograms, weighted by its share of `image`."""
        own = self.histograms[:, 0].sum(axis=1)  # each cluster's share of the reference
        weights = np.where(own > 0, self.shares(image) / np.maximum(own, 1e-12), 0.0)
        if weights.sum() <= 0:  # nothing of `image` falls where the reference has pixels
            weights = np.ones_like(own)
        mixed = np.tensordot(weights, self.histograms, axes=1)
        return mixed / mixed.sum(axis=1, keepdims=True)

    def to_array(self) -> np.ndarray:
        """(k, 771) float64: centres then the flattened histograms, per cluster."""
        flat = self.histograms.reshape(len(self.centres), 3 * 256)
        return np.hstack([self.centres.astype(np.float64), flat])

    @classmethod
    def from_array(cls, array: np.ndarray) -> Palette:
        """The inverse of `to_array`."""
        array = np.asarray(array, np.float64)
        if array.ndim != 2 or array.shape[1] != 3 + 3 * 256 or not np.all(np.isfinite(array)):
            raise ValueError(f"expected a finite (k, 771) palette array, got {array.shape}")
        histograms = array[:, 3:].reshape(len(array), 3, 256)
        return cls(array[:, :3], histograms)


def _sample(image: np.ndarray, count: int) -> np.ndarray:
    """About `count` pixels of an RGB uint8 frame on a regular grid, as (n, 3) uint8."""
    height, width = image.shape[:2]
    stride = max(1, int(np.ceil(np.sqrt(height * width / count))))
    return np.ascontiguousarray(image[::stride, ::stride]).reshape(-1, 3)


def _cluster(pixels: np.ndarray, count: int) -> np.ndarray:
    """k-means centres of (n, 3) uint8 pixels, started from luminance quantiles (so the
    result depends on the pixels only, never on a random draw)."""
    points = pixels.astype(np.float32)
    order = np.argsort(points @ _LUMA, kind="stable")
    starts = ((np.arange(count) + 0.5) / count * len(points)).astype(np.int64)
    centres = points[order[starts]].copy()
    for _ in range(_ITERATIONS):
        labels = _nearest(points, centres)
        sizes = np.bincount(labels, minlength=count)
        filled = sizes > 0
        for channel in range(3):
            sums = np.bincount(labels, weights=points[:, channel], minlength=count)
            centres[filled, channel] = sums[filled] / sizes[filled]
    return centres


def _nearest(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (squared RGB distance) for each of (n, 3) points."""
    # broadcast per channel: a (n, 3) @ (3, k) product goes through BLAS, whose threads
    # cost more than the arithmetic on a busy 2-core machine
    distance = np.zeros((len(points), len(centres)), np.float32)
    for channel in range(3):
        distance += np.square(points[:, channel, None] - centres[None, :, channel])
    return np.argmin(distance, axis=1)


def _quantised_colours() -> np.ndarray:
    """The centres of the lookup table's RGB cells, (32768, 3) float32."""
    step = 1 << (8 - QUANT_BITS)
    levels = np.arange(1 << QUANT_BITS, dtype=np.float32) * step + step / 2.0
    red, green, blue = np.meshgrid(levels, levels, levels, indexing="ij")
    return np.stack([red, green, blue], axis=-1).reshape(-1, 3)
