"""Hole filling for warped frames (the `preview` engine's repair, SPEC §7).

`Filler` is the protocol: `fill(image, holes)` returns a copy of `image` whose `holes`
pixels are replaced and every other pixel is left exactly as it was.

`ClassicalFiller` has two kinds of method:

* `"pyramid"` (default, a few ms at 640²), three steps:
  1. push-pull over an image pyramid (from 1/4 size) gives every hole a smooth fill that
     blends the colours around it at every scale — fast whatever the hole's size, where
     `cv2.inpaint` takes tens of ms on the border strips of a zoom-out;
  2. hole pixels next to known ones take the mean of their known neighbours, so the thin
     cracks of parallax stay crisp;
  3. a light texture: each hole pixel takes the brightness detail of a point mirrored
     across the hole's boundary (shifted a little per block, so repeated fills do not
     draw streaks), so zoom-out borders continue the grass instead of a smear.
* `"telea"` / `"ns"`: OpenCV's `cv2.inpaint`, kept for comparison
  (benchmarks/bench_depth_fill.py measures both on real masks).
"""

from __future__ import annotations

from typing import Literal, Protocol

import cv2
import numpy as np

FillMethod = Literal["pyramid", "telea", "ns"]

_WEIGHT_BOOST = 4.0  # a coarse pixel with ≥ 1/4 valid area counts as fully known (crisp fill)
_REDUCTION = 4  # the pyramid's first level, relative to the frame
_DETAIL_LIMIT = 24  # levels: texture, not edges
_JITTER, _JITTER_BLOCK = 6, 8  # texture is copied from up to 6 px aside, per 8×8 block
_NEIGHBOUR_GATHER_COST = 40  # per hole pixel, gathering 8 neighbours ≈ this many box-filter pixels


class Filler(Protocol):
    def fill(self, image: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """A copy of RGB uint8 (H, W, 3) `image` with its `holes` (bool (H, W)) filled."""


class ClassicalFiller:
    """Fills holes without a model; deterministic.

    `texture` scales the mirrored fine detail added to pyramid fills (0 = smooth fill).
    `inpaint_radius` is cv2.inpaint's neighbourhood for the OpenCV methods.
    """

    def __init__(self, method: FillMethod = "pyramid", texture: float = 0.8,
                 inpaint_radius: int = 3) -> None:
        if method not in ("pyramid", "telea", "ns"):
            raise ValueError(f"unknown fill method {method!r}; expected pyramid, telea or ns")
        self.method = method
        self.texture = float(texture)
        self.inpaint_radius = inpaint_radius

    def fill(self, image: np.ndarray, holes: np.ndarray) -> np.ndarray:
        _check_inputs(image, holes)
        image, holes = np.ascontiguousarray(image), np.ascontiguousarray(holes)
        if not holes.any():
            return image.copy()
        if holes.all():  # nothing to fill from: neutral grey rather than garbage
            return np.full_like(image, 128)
        if self.method == "pyramid":
            return _pyramid_fill(image, holes, self.texture)
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        hole_mask = holes.view(np.uint8)
        filled = cv2.inpaint(image, hole_mask, self.inpaint_radius, flag)
        result = image.copy()
        cv2.copyTo(filled, hole_mask, result)  # cv2.inpaint may touch pixels beside holes
        return result


def _check_inputs(image: np.ndarray, holes: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if holes.shape != image.shape[:2] or holes.dtype != np.bool_:
        raise ValueError(f"expected a bool {image.shape[:2]} mask, got {holes.dtype} {holes.shape}")


def _pyramid_fill(image: np.ndarray, holes: np.ndarray, texture: float) -> np.ndarray:
    height, width = holes.shape
    # NB: OpenCV's masked ops are ~100× faster here than numpy's boolean-mask assignment.
    hole_mask = holes.view(np.uint8)
    known = cv2.compare(hole_mask, 0, cv2.CMP_EQ)  # 255 where known
    # The pyramid starts at 1/4 size straight from uint8 (hole pixels zeroed, area-averaged
    # with their weights): the fill is smooth there anyway, and texture comes back below.
    premultiplied = cv2.bitwise_and(image, image, mask=known)
    colour = _shrink(premultiplied).astype(np.float32)
    weight = _shrink(known).astype(np.float32)
    weight *= 1.0 / 255.0
    smooth = _push_pull(colour, cv2.merge([weight, weight, weight]))
    smooth = cv2.resize(cv2.convertScaleAbs(smooth), (width, height),
                        interpolation=cv2.INTER_LINEAR)

    result = image.copy()
    cv2.copyTo(smooth, hole_mask, result)
    flat_holes = np.flatnonzero(holes)
    _fill_from_neighbours(result, premultiplied, hole_mask, flat_holes)
    if texture > 0:
        _add_mirrored_detail(result, image, holes, smooth, weight >= 1.0, texture)
    return result


def _shrink(image: np.ndarray) -> np.ndarray:
    """Area-average down by `_REDUCTION` in halvings (OpenCV's ×2 path is ~3× faster)."""
    factor = 1
    while factor < _REDUCTION:
        height, width = image.shape[:2]
        image = cv2.resize(image, ((width + 1) // 2, (height + 1) // 2),
                           interpolation=cv2.INTER_AREA)
        factor *= 2
    return image


def _fill_from_neighbours(result: np.ndarray, premultiplied: np.ndarray, hole_mask: np.ndarray,
                          flat_holes: np.ndarray) -> None:
    """Hole pixels with a known 8-neighbour take the mean of their known neighbours.

    Thin cracks (most parallax holes) are then filled from the pixels right beside them,
    crisper than the coarse pyramid can; wider holes keep the pyramid inside. Few hole
    pixels: gather their neighbours; many: two full-frame box filters are cheaper.
    """
    if flat_holes.size * _NEIGHBOUR_GATHER_COST < hole_mask.size:
        sums, count = _neighbour_sums_gathered(premultiplied, hole_mask, flat_holes)
    else:
        sums, count = _neighbour_sums_filtered(premultiplied, hole_mask, flat_holes)
    has_known = count > 0
    if not has_known.any():
        return
    mean = sums[has_known].astype(np.float32)
    mean /= count[has_known].astype(np.float32)[:, None]
    result.reshape(-1, 3)[flat_holes[has_known]] = (mean + 0.5).astype(np.uint8)


def _neighbour_sums_filtered(premultiplied: np.ndarray, hole_mask: np.ndarray,
                             flat_holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sums = cv2.boxFilter(premultiplied, cv2.CV_16U, (3, 3), normalize=False,
                         borderType=cv2.BORDER_CONSTANT)
    counts = cv2.boxFilter(hole_mask ^ np.uint8(1), cv2.CV_16U, (3, 3), normalize=False,
                           borderType=cv2.BORDER_CONSTANT)
    return np.take(sums.reshape(-1, 3), flat_holes, axis=0), np.take(counts, flat_holes)


def _neighbour_sums_gathered(premultiplied: np.ndarray, hole_mask: np.ndarray,
                             flat_holes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a one-pixel frame of unknown zeros around the picture: no bounds checks below
    width = hole_mask.shape[1]
    pixels = cv2.copyMakeBorder(premultiplied, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    known = cv2.copyMakeBorder(hole_mask ^ np.uint8(1), 1, 1, 1, 1, cv2.BORDER_CONSTANT,
                               value=0)
    pixels, known = pixels.reshape(-1, 3), known.ravel()
    ys, xs = np.divmod(flat_holes, width)
    centre = (ys + 1) * (width + 2) + (xs + 1)
    sums = np.zeros((flat_holes.size, 3), np.int32)
    count = np.zeros(flat_holes.size, np.int32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:  # the hole pixel itself is unknown
                neighbour = centre + (dy * (width + 2) + dx)
                sums += np.take(pixels, neighbour, axis=0)  # unknown pixels are zero
                count += np.take(known, neighbour)
    return sums, count


def _push_pull(colour: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Fill zero-weight pixels of a premultiplied image from ever coarser averages.

    `colour` holds Σ(valid colour)/area and `weight` the valid fraction of each pixel
    (repeated over the 3 channels: numpy is slow to broadcast a trailing axis of 3).
    Push: halve both until every pixel has some weight. Pull: from the top down, each
    level keeps its own mean where it has enough weight and takes the upsampled coarser
    fill elsewhere, blending in between.
    """
    levels = [(colour, weight)]
    while levels[-1][1].min() <= 0.0 and min(levels[-1][1].shape[:2]) > 1:
        c, w = levels[-1]
        size = (max((w.shape[1] + 1) // 2, 1), max((w.shape[0] + 1) // 2, 1))
        levels.append((cv2.resize(c, size, interpolation=cv2.INTER_AREA),
                       cv2.resize(w, size, interpolation=cv2.INTER_AREA)))

    c, w = levels[-1]
    filled = c / np.maximum(w, 1e-6)
    for c, w in reversed(levels[:-1]):
        up = cv2.resize(filled, (w.shape[1], w.shape[0]), interpolation=cv2.INTER_LINEAR)
        # filled = trust × (mean of the valid colour) + (1 - trust) × coarser fill, in
        # place: fresh megabyte temporaries cost more than the arithmetic itself
        trust = np.multiply(w, _WEIGHT_BOOST)
        np.minimum(trust, 1.0, out=trust)
        own = np.maximum(w, 1e-6)
        np.divide(trust, own, out=own)
        np.multiply(own, c, out=own)
        np.subtract(1.0, trust, out=trust)
        np.multiply(up, trust, out=up)
        filled = np.add(up, own, out=up)
    return filled


def _add_mirrored_detail(result: np.ndarray, image: np.ndarray, holes: np.ndarray,
                         smooth: np.ndarray, coarse_known: np.ndarray, texture: float) -> None:
    """Add fine detail to each hole pixel of `result`, mirrored across the hole's boundary.

    The nearest fully known pixel q of a hole pixel p is found at the pyramid's first
    level (distance transform with labels); p takes the brightness detail (picture minus
    its smooth version) of the point 2q - p, moved a little aside per block and scaled by
    `texture`. Where that point is itself a hole or off the frame, no detail is added.
    Works on flat pixel indices: per-hole-pixel gathers cost far less than full-frame
    passes.
    """
    if not coarse_known.any():
        return
    height, width = holes.shape
    small_h, small_w = coarse_known.shape
    _, labels = cv2.distanceTransformWithLabels((~coarse_known).astype(np.uint8), cv2.DIST_L2,
                                                3, labelType=cv2.DIST_LABEL_PIXEL)
    known_index = np.flatnonzero(coarse_known)  # labels number these (raster order) from 1
    flat = np.flatnonzero(holes)
    ys, xs = np.divmod(flat, width)
    nearest = known_index[labels[ys * small_h // height, xs * small_w // width] - 1]
    qy, qx = np.divmod(nearest, small_w)
    # mirror p through the centre of its nearest known coarse pixel, in full-res pixels,
    # then shift by a fixed pseudo-random offset per block: copying straight along the
    # normal frame after frame (zoom-out borders) would draw streaks
    jitter_x, jitter_y = _block_jitter(xs, ys)
    sx = np.rint((2.0 * width / small_w) * (qx + 0.5) - 1.0 - xs).astype(np.int64) + jitter_x
    sy = np.rint((2.0 * height / small_h) * (qy + 0.5) - 1.0 - ys).astype(np.int64) + jitter_y
    inside = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    source = np.clip(sy, 0, height - 1) * width + np.clip(sx, 0, width - 1)
    usable = inside & ~holes.ravel()[source]

    # Texture is brightness only (the same change on all three channels) and limited to
    # ±_DETAIL_LIMIT levels: a copied edge, or a hue from across one, must not show up as
    # a coloured speck.
    pixels, smooth_pixels = image.reshape(-1, 3), smooth.reshape(-1, 3)
    detail = np.take(pixels, source, axis=0).sum(axis=1, dtype=np.int32)
    detail -= np.take(smooth_pixels, source, axis=0).sum(axis=1, dtype=np.int32)
    detail *= np.where(usable, np.int32(round(texture * 256 / 3)), np.int32(0))
    detail >>= 8
    np.clip(detail, -_DETAIL_LIMIT, _DETAIL_LIMIT, out=detail)
    out = result.reshape(-1, 3)
    filled = np.take(out, flat, axis=0).astype(np.int32)
    filled += detail[:, None]
    out[flat] = np.clip(filled, 0, 255).astype(np.uint8)


def _block_jitter(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic offset in [-J, J]² that is constant over each block of pixels."""
    block = (ys // _JITTER_BLOCK) * 7919 + (xs // _JITTER_BLOCK) * 104729  # two primes
    hashed = (block * 2654435761) % (1 << 32)  # Knuth's multiplicative hash
    span = 2 * _JITTER + 1
    return hashed % span - _JITTER, (hashed >> 8) % span - _JITTER
