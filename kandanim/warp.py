"""Depth-based forward warp of a frame to the next camera pose, with a z-buffer.

Every source pixel is unprojected with its depth, moved into the new camera frame
(`p_cur = R @ p_prev + t`, OpenCV axes: x right, y down, z forward), projected again, and
splatted to the target pixel it lands in. Where several land in one pixel the nearest wins
(a z-buffer). Colour is not splatted: the winning source coordinates form a *backward* map
(target pixel → sub-pixel source position) and one bilinear `cv2.remap` samples the image,
so a 0.3 px move shifts the picture by 0.3 px instead of snapping to whole pixels.

How it stays fast (numpy + OpenCV, no Python loops over pixels):

* The projection folds K, R and t into `A = K·R·K⁻¹` and `b = K·t`, so a target point is
  `z·A·[u, v, 1] + b`: a few float32 array operations on cached pixel grids.
* The z-buffer is one `np.minimum.at` over int64 keys `depth_bits << 32 | source_index`.
  The bit pattern of a positive float32 orders like the float, so the smallest key is
  the nearest point; ties go to the lower source index, so results are deterministic.
* The winner's offset `source − landing position` is gathered per target pixel; the map
  is `target + offset`, exact to first order within the pixel.

Holes (`WarpResult.holes`) are target pixels that nothing landed on — new border content,
disocclusions — plus pixels whose winner sits on a *torn* edge: a source pixel whose
neighbour lands more than `edge_threshold` pixels away (a depth jump stretching apart).
Single-pixel gaps from a gentle stretch (zoom-in, rotation rounding) are not holes: they
are filled by interpolating the map from the two opposite neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

DEFAULT_EDGE_THRESHOLD = 1.5
"""Neighbouring source pixels landing further apart than this (in target pixels) tear."""

MIN_DEPTH = 1e-3
"""Points at or behind this depth in the new camera (scene units) are dropped."""

_HOLE = np.float32(-1.0e4)  # offset marking "no source": far outside any frame
_HOLE_LIMIT = np.float32(-1.0e3)  # offsets below this are holes (frames are ≤ 2048 px)
_EMPTY_KEY_HIGH = 0x7FFFFFFF  # above every finite positive float32 bit pattern


@dataclass(frozen=True)
class WarpResult:
    """A warped frame and the pixels the filler must invent."""

    image: np.ndarray  # (H, W, 3) uint8 RGB; hole pixels hold the colour of pixel (0, 0)
    holes: np.ndarray  # (H, W) bool


@dataclass(frozen=True)
class WarpedDepth:
    """The depth of the target frame as seen from the new camera."""

    depth: np.ndarray  # (H, W) float32; hole pixels inpainted from their surroundings
    holes: np.ndarray  # (H, W) bool, the same holes as the image warp


@dataclass(frozen=True)
class WarpMap:
    """The backward map of one camera move over one depth map, reusable for any image."""

    map_x: np.ndarray  # (H, W) float32 source column sampled by each target pixel
    map_y: np.ndarray  # (H, W) float32 source row
    holes: np.ndarray  # (H, W) bool
    moved_depth: np.ndarray  # (H, W) float32 depth of every *source* pixel in the new camera

    def apply(self, image: np.ndarray) -> WarpResult:
        """Sample `image` (the frame the depth belongs to) through the map."""
        _check_image(image, self.holes.shape)
        warped = cv2.remap(
            image, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        return WarpResult(image=warped, holes=self.holes)


def forward_warp(
    image: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803 — the usual name of the intrinsics matrix
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
) -> WarpResult:
    """Warp `image` (RGB uint8, (H, W, 3)) seen with metric `depth` (z along the optical
    axis, (H, W)) by the camera move `(rotation, translation)` from `camera.relative_move`.

    An identity move returns an identical copy with no holes.
    """
    _check_image(image, None)
    _check_inputs(depth, K, rotation, translation, edge_threshold, image.shape[:2])
    if _is_identity(rotation, translation):
        return WarpResult(image=image.copy(), holes=np.zeros(image.shape[:2], dtype=bool))
    return warp_map(depth, K, rotation, translation, edge_threshold=edge_threshold).apply(image)


def warp_depth(
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
) -> WarpedDepth:
    """The depth map of the target frame, e.g. to skip a depth estimate under cadence.

    Holes are inpainted (OpenCV Telea) so the map is usable as is; `holes` says where.
    """
    warp = warp_map(depth, K, rotation, translation, edge_threshold=edge_threshold)
    moved = cv2.remap(
        warp.moved_depth, warp.map_x, warp.map_y, cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    if warp.holes.any():
        mask = warp.holes.astype(np.uint8)
        moved = cv2.inpaint(moved, mask, 3, cv2.INPAINT_TELEA)
    return WarpedDepth(depth=moved, holes=warp.holes)


def warp_map(
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
) -> WarpMap:
    """Forward-project every pixel, z-buffer the landings, and invert into a backward map."""
    depth = _check_inputs(depth, K, rotation, translation, edge_threshold, None)
    height, width = depth.shape
    grids = _grids(height, width)
    landing_x, landing_y, moved_depth = _project(depth, K, rotation, translation, grids)
    offsets = _source_offsets(landing_x, landing_y, grids, edge_threshold)
    winners = _zbuffer(landing_x, landing_y, moved_depth, grids)
    # Offsets of each target pixel's winner, on the padded grid (margins are holes).
    target_offsets = offsets[winners]
    _fill_small_gaps(target_offsets, grids)
    inner = target_offsets.view(np.float32).reshape(height + 2, width + 2, 2)[1:-1, 1:-1]
    holes = inner[..., 0] < _HOLE_LIMIT
    map_x = np.add(inner[..., 0], grids.xs)
    map_y = np.add(inner[..., 1], grids.ys)
    return WarpMap(map_x=map_x, map_y=map_y, holes=holes, moved_depth=moved_depth)


# ----------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Grids:
    """Arrays that depend only on the frame size, cached across frames."""

    height: int
    width: int
    xs: np.ndarray  # (W,) float32 column coordinates 0 … W-1 (broadcasts over rows)
    ys: np.ndarray  # (H, 1) float32 row coordinates
    padded_index: np.ndarray  # (H, W) int64 source index in the padded (H+2)×(W+2) layout


@lru_cache(maxsize=8)
def _grids(height: int, width: int) -> _Grids:
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    rows = np.arange(height, dtype=np.int64)[:, None]
    cols = np.arange(width, dtype=np.int64)[None, :]
    padded_index = (rows + 1) * (width + 2) + (cols + 1)
    for array in (xs, ys, padded_index):
        array.setflags(write=False)
    return _Grids(height, width, xs, ys, padded_index)


def _project(
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
    grids: _Grids,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landing x, y (target pixels) and new-camera depth of every source pixel.

    The homogeneous target point is `z·A·[u, v, 1] + b`, with `A = K·R·K⁻¹`, `b = K·t`.
    Landing coordinates of points with depth ≤ MIN_DEPTH are meaningless (callers drop them).
    """
    k = np.asarray(K, dtype=np.float64)
    a = k @ np.asarray(rotation, dtype=np.float64) @ np.linalg.inv(k)
    b = k @ np.asarray(translation, dtype=np.float64).reshape(3)
    homogeneous = []
    for row in range(3):
        # One broadcast add builds the (H, W) plane A[row]·[u, v, 1] from a row and a column.
        plane = np.float32(a[row, 0]) * grids.xs + (
            np.float32(a[row, 1]) * grids.ys + np.float32(a[row, 2])
        )
        plane *= depth
        if b[row] != 0.0:
            plane += np.float32(b[row])
        homogeneous.append(plane)
    hx, hy, moved_depth = homogeneous
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.divide(np.float32(1.0), moved_depth)
    hx *= inverse
    hy *= inverse
    return hx, hy, moved_depth


def _source_offsets(
    landing_x: np.ndarray, landing_y: np.ndarray, grids: _Grids, edge_threshold: float
) -> np.ndarray:
    """Per source pixel, `source − landing` as complex64-sized pairs, plus one hole entry.

    Returned as a flat int64 *view* (N + 1,) so a single 8-byte gather moves both offsets;
    entry N is the hole marker. Torn source pixels are marked as holes too.
    """
    height, width = landing_x.shape
    count = height * width
    pairs = np.empty((count + 1, 2), dtype=np.float32)
    np.subtract(grids.xs, landing_x, out=pairs[:count, 0].reshape(height, width))
    np.subtract(grids.ys, landing_y, out=pairs[:count, 1].reshape(height, width))
    pairs[count] = _HOLE
    torn = _torn(landing_x, landing_y, edge_threshold)
    pairs[:count, 0][torn.ravel()] = _HOLE
    return pairs.view(np.int64).reshape(count + 1)


def _torn(landing_x: np.ndarray, landing_y: np.ndarray, edge_threshold: float) -> np.ndarray:
    """Source pixels on a stretched depth edge: a right/down neighbour lands too far away.

    Only stretching counts (a signed difference): where neighbours overlap, the z-buffer
    already decides who is visible. Both pixels of a torn pair are marked, because the
    pixels on either side of a depth edge carry colour blended across it.
    """
    with np.errstate(invalid="ignore"):
        across = np.diff(landing_x, axis=1) > edge_threshold
        down = np.diff(landing_y, axis=0) > edge_threshold
    torn = np.zeros(landing_x.shape, dtype=bool)
    torn[:, 1:] |= across
    torn[:, :-1] |= across
    torn[1:, :] |= down
    torn[:-1, :] |= down
    return torn


def _zbuffer(
    landing_x: np.ndarray, landing_y: np.ndarray, moved_depth: np.ndarray, grids: _Grids
) -> np.ndarray:
    """Winning source index per target pixel on the padded (H+2)×(W+2) grid, flat int64.

    Landings outside the frame clip into the one-pixel margin, so no bounds masks are
    needed; the margin is thrown away. Pixels nobody reaches get index N (the hole entry).
    """
    height, width = grids.height, grids.width
    padded_width = width + 2
    # Nearest target pixel, shifted by one for the margin; truncation is floor here since
    # negatives clip to the margin anyway (NaN/inf casts land there too after the clip).
    with np.errstate(invalid="ignore"):
        column = np.add(landing_x, np.float32(1.5)).astype(np.int32)
        row = np.add(landing_y, np.float32(1.5)).astype(np.int32)
    np.clip(column, 0, width + 1, out=column)
    np.clip(row, 0, height + 1, out=row)
    target = row.astype(np.int64)
    target *= padded_width
    target += column
    target *= moved_depth > MIN_DEPTH  # dropped points go to the margin cell 0
    # Positive float32 bit patterns sort like the floats: nearest point = smallest key.
    key = moved_depth.view(np.int32).astype(np.int64)
    key <<= 32
    key |= np.arange(height * width, dtype=np.int64).reshape(height, width)
    empty = np.int64(_EMPTY_KEY_HIGH << 32 | height * width)
    zbuffer = np.full((height + 2) * padded_width, empty, dtype=np.int64)
    np.minimum.at(zbuffer, target.ravel(), key.ravel())
    zbuffer &= 0xFFFFFFFF
    # Landings outside the frame collected in the margin: make it all holes.
    framed = zbuffer.reshape(height + 2, padded_width)
    framed[[0, -1], :] = height * width
    framed[:, [0, -1]] = height * width
    return zbuffer


def _fill_small_gaps(target_offsets: np.ndarray, grids: _Grids) -> None:
    """Fill target pixels missed by rounding in a gently stretched surface, in place.

    A pixel is a gap, not a hole, when both neighbours across it (left/right, else
    up/down) have a winner: its map is their mean. A second pass closes the crossings
    of a missed row and a missed column.
    """
    pairs = target_offsets.view(np.float32).reshape(-1, 2)
    height, width = grids.height, grids.width
    step = width + 2
    for _ in range(2):
        inner = pairs[:, 0].reshape(height + 2, step)[1:-1, 1:-1]
        candidates = grids.padded_index[inner < _HOLE_LIMIT]
        if candidates.size == 0:
            return
        filled = _mean_of_opposites(pairs, candidates, 1)
        vertical = _mean_of_opposites(pairs, candidates, step)
        use_vertical = (filled[:, 0] < _HOLE_LIMIT) & (vertical[:, 0] >= _HOLE_LIMIT)
        filled[use_vertical] = vertical[use_vertical]
        pairs[candidates] = filled


def _mean_of_opposites(pairs: np.ndarray, candidates: np.ndarray, step: int) -> np.ndarray:
    """Mean offset of the two neighbours `step` before and after; a hole if either is."""
    before = pairs[candidates - step]
    after = pairs[candidates + step]
    mean = (before + after) * np.float32(0.5)
    either_hole = (before[:, 0] < _HOLE_LIMIT) | (after[:, 0] < _HOLE_LIMIT)
    mean[either_hole] = _HOLE
    return mean


def _is_identity(rotation: np.ndarray, translation: np.ndarray) -> bool:
    rotation = np.asarray(rotation)
    translation = np.asarray(translation)
    return (
        rotation.shape == (3, 3)
        and translation.size == 3
        and bool(np.array_equal(rotation, np.eye(3)))
        and not bool(np.any(translation))
    )


def _check_image(image: np.ndarray, shape: tuple[int, ...] | None) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3), got shape {np.shape(image)}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if shape is not None and image.shape[:2] != shape:
        raise ValueError(f"image shape {image.shape} does not match the map's {shape}")


def _check_inputs(
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
    edge_threshold: float,
    shape: tuple[int, ...] | None,
) -> np.ndarray:
    """Validate the geometry inputs; returns the depth as C-contiguous float32."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.shape[0] < 1 or depth.shape[1] < 1:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if shape is not None and depth.shape != shape:
        raise ValueError(f"depth shape {depth.shape} does not match image shape {shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"depth must be floating point, got {depth.dtype}")
    if np.shape(K) != (3, 3):
        raise ValueError(f"K must be (3, 3), got shape {np.shape(K)}")
    if np.shape(rotation) != (3, 3):
        raise ValueError(f"rotation must be (3, 3), got shape {np.shape(rotation)}")
    if np.shape(translation) not in ((3,), (3, 1)):
        raise ValueError(f"translation must be (3,), got shape {np.shape(translation)}")
    if not edge_threshold > 1.0:
        raise ValueError(f"edge_threshold must be > 1 pixel, got {edge_threshold}")
    return np.ascontiguousarray(depth, dtype=np.float32)
