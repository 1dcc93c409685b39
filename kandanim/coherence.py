"""Temporal coherence: keep colours from drifting across frames, counter progressive blur.

A loop that feeds each frame back into img2img drifts in colour (saturation creeps, tints
build up), and every warp resamples, softening the picture. SPEC §5 step 5:

* `match_colours` / `ColourReference.match` map each LAB channel of a frame through a
  lookup table so that its histogram matches the scene's first frame — re-mixed to the
  frame's composition: the reference is kept as a `Palette` of colour clusters with
  their own histograms, and each cluster counts as much as the frame shows of it. Plain
  global matching turned grey rocks blue during a zoom-in (less sky in the frame, so the
  sky's share of the target went to the rocks); re-mixed, only a real drift (a tint,
  saturation creeping) is corrected. `clusters=1` is plain global matching.
  The palette is computed once (`ColourReference`); a frame costs a conversion of a
  quarter of its pixels and three histograms, and — only when it has drifted measurably
  — a table lookup and a conversion back on that quarter, whose change is upsampled onto
  the frame. `to_array()` / `from_array()` turn the reference into one small array for
  the resume manifest.
* `unsharp` is an unsharp mask against progressive blur.

All inputs and outputs are RGB uint8 (H, W, 3).
"""

from __future__ import annotations

import cv2
import numpy as np

from kandanim.palette import CLUSTERS, Palette

_LEVELS = np.arange(256, dtype=np.float64)
_NEGLIGIBLE_SHIFT = 0.5  # mean |level change| per channel below which a match is skipped
_COMPOSITION_PASSES = 4  # match, then re-measure the composition on the corrected colours


class ColourReference:
    """The colour palette of a reference frame (usually a scene's first frame)."""

    def __init__(self, reference: np.ndarray, clusters: int = CLUSTERS) -> None:
        """Measure `reference`, an RGB uint8 frame, as `clusters` colour clusters."""
        _check_frame(reference)
        self.palette = Palette.of(reference, clusters)

    @property
    def histograms(self) -> np.ndarray:
        """(3, 256) float64 LAB histograms of the whole reference, each row summing to 1."""
        return self.palette.histograms.sum(axis=0)

    def to_array(self) -> np.ndarray:
        """(clusters, 771) float64: all a `ColourReference` needs, for saving."""
        return self.palette.to_array()

    @classmethod
    def from_array(cls, array: np.ndarray) -> ColourReference:
        """The inverse of `to_array`; the result matches exactly as the original did."""
        reference = cls.__new__(cls)
        reference.palette = Palette.from_array(array)
        return reference

    def match(self, image: np.ndarray, strength: float = 1.0) -> np.ndarray:
        """`image` with each LAB channel's histogram matched to the reference's, re-mixed
        to `image`'s share of each colour cluster.

        `strength` in [0, 1] blends each lookup table with the identity (1 = full match).
        When the match would move the average pixel by less than half a level in every
        channel, the image comes back unchanged: such a correction is below what the
        8-bit LAB round trip itself costs.
        """
        _check_frame(image)
        image = np.ascontiguousarray(image)
        # histograms from a quarter of the pixels of a large frame, converted alone
        pixels = _subsample(image)
        sample = _to_lab(pixels)
        histograms = [_histogram(sample, channel) for channel in range(3)]
        # the composition (cluster shares) is well measured on a sixteenth of the pixels
        target = self.palette.expected_histograms(pixels[::2, ::2])
        tables, shift = _matching_tables(histograms, target, strength)
        # Which cluster a pixel belongs to is judged by its colour, which the drift being
        # undone has moved: measure the composition again on the corrected colours.
        sparse = np.ascontiguousarray(sample[::2, ::2])
        for _ in range(_COMPOSITION_PASSES - 1):
            if shift < _NEGLIGIBLE_SHIFT:
                break
            corrected = cv2.cvtColor(cv2.LUT(sparse, tables), cv2.COLOR_LAB2RGB)
            target = self.palette.expected_histograms(corrected)
            tables, shift = _matching_tables(histograms, target, strength)
        if shift < _NEGLIGIBLE_SHIFT:
            return image.copy()
        matched = cv2.cvtColor(cv2.LUT(sample, tables), cv2.COLOR_LAB2RGB)
        if sample.shape[:2] == image.shape[:2]:
            return matched
        return _apply_change(image, pixels, matched)


def _apply_change(image: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """`image` moved by the change `after - before` measured on its reduced copy `before`.

    The correction is a smooth function of colour, so the change at a quarter of the
    pixels, upsampled, stands for it everywhere: two resizes instead of two full-frame LAB
    conversions (a few ms at 640×640); only colour edges see it blended over a pixel.
    """
    size = (image.shape[1], image.shape[0])
    raise_by = cv2.resize(cv2.subtract(after, before), size, interpolation=cv2.INTER_LINEAR)
    lower_by = cv2.resize(cv2.subtract(before, after), size, interpolation=cv2.INTER_LINEAR)
    return cv2.subtract(cv2.add(image, raise_by), lower_by)


def _matching_tables(
    histograms: list[np.ndarray], target: np.ndarray, strength: float
) -> tuple[np.ndarray, float]:
    """(1, 256, 3) lookup tables taking each channel's histogram onto `target`'s, blended
    with the identity by `strength`, and the largest mean level change they cause."""
    tables = np.empty((1, 256, 3), np.uint8)
    shift = 0.0
    for channel, histogram in enumerate(histograms):
        used, cumulative = _mid_cdf_at_used_levels(target[channel])
        mapped = np.interp(_mid_cdf(histogram), cumulative, used)
        mapped = _LEVELS + strength * (mapped - _LEVELS)
        shift = max(shift, float(histogram @ np.abs(mapped - _LEVELS)))
        tables[0, :, channel] = np.clip(mapped + 0.5, 0, 255).astype(np.uint8)
    return tables, shift


def match_colours(image: np.ndarray, reference: np.ndarray | ColourReference,
                  strength: float = 1.0) -> np.ndarray:
    """`image` with its LAB histograms matched to `reference` (a frame or its
    `ColourReference`).

    For many frames against one reference, build the `ColourReference` once.
    """
    if not isinstance(reference, ColourReference):
        reference = ColourReference(reference)
    return reference.match(image, strength)


def unsharp(image: np.ndarray, amount: float, radius: float = 1.0) -> np.ndarray:
    """Unsharp mask: image + amount × (image − blur(image)), saturated to uint8.

    `radius` is the Gaussian's sigma in pixels; `amount` 0 returns an unchanged copy.
    """
    _check_frame(image)
    if amount <= 0:
        return image.copy()
    blurred = cv2.GaussianBlur(image, (0, 0), radius)
    return cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0)


def _check_frame(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")


def _to_lab(image: np.ndarray) -> np.ndarray:
    # 8-bit LAB: L scaled to 0..255, a and b offset by 128 — every channel a byte
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB)


def _subsample(image: np.ndarray) -> np.ndarray:
    """Every other pixel each way: a quarter of a large frame estimates its histograms as
    well at a quarter of the cost; frames under 256×256 are used whole."""
    height, width = image.shape[:2]
    if height * width < 256 * 256:
        return image
    size = ((width + 1) // 2, (height + 1) // 2)
    return cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)


def _histogram(lab: np.ndarray, channel: int) -> np.ndarray:
    counts = cv2.calcHist([lab], [channel], None, [256], [0, 256]).ravel().astype(np.float64)
    return counts / counts.sum()


def _mid_cdf(histogram: np.ndarray) -> np.ndarray:
    """Share of pixels below each level plus half of the level's own share.

    Mid-bin values make matching symmetric: an image matched to itself maps every level
    it uses onto itself.
    """
    return np.cumsum(histogram) - 0.5 * histogram


def _mid_cdf_at_used_levels(histogram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    used = np.flatnonzero(histogram > 0)
    if used.size == 0:  # cannot happen for a real frame; keep the identity
        return _LEVELS.copy(), (_LEVELS + 0.5) / 256.0
    return used.astype(np.float64), _mid_cdf(histogram)[used]
