"""Depth-based forward warp of a frame to the next camera pose, with a z-buffer.

Every source pixel is unprojected with its depth, moved into the new camera frame
(`p_cur = R @ p_prev + t`, OpenCV axes: x right, y down, z forward), projected again, and
splatted to the target pixel it lands in. Where several land in one pixel the nearest wins
(a z-buffer). Colour is not splatted: the winning source coordinates form a *backward* map
(target pixel → sub-pixel source position) and one bilinear `cv2.remap` samples the image,
so a 0.3 px move shifts the picture by 0.3 px instead of snapping to whole pixels.

How it stays fast (numpy + OpenCV, no Python loops over pixels, ~5 ms at 640² on one core):

* The projection folds K, R and t into `A = K·R·K⁻¹` and `b = K·t`, so a target point is
  `z·A·[u, v, 1] + b`: a few float32 array operations on cached pixel grids. Landing
  coordinates come out already shifted into the z-buffer's padded layout (+1 margin,
  +0.5 for rounding), so one truncation gives the target cell.
* The z-buffer is one `np.minimum.at` over int64 keys `depth_bits << 32 | source_index`.
  The bit pattern of a positive float32 orders like the float, so the smallest key is
  the nearest point; ties go to the lower source index, so results are deterministic.
* The winner's offset `source − landing position` is gathered per target pixel; the map
  is `target + offset`, exact to first order within the pixel.
* Every intermediate lives in a per-thread workspace allocated once per frame size: no
  fresh multi-megabyte temporaries (and their page faults) per frame.

Holes (`WarpResult.holes`) are target pixels that nothing landed on — new border content,
disocclusions — plus pixels whose winner sits on a *torn* edge: a source pixel whose
neighbour lands more than `edge_threshold` pixels away (a depth jump stretching apart).
Single-pixel gaps from a gentle stretch (zoom-in, rotation rounding) are not holes: they
are filled by interpolating the map from the two opposite neighbours.
"""

from __future__ import annotations

import sys
import threading
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
_LOW_32_BITS = 0xFFFFFFFF
_WORKSPACE_SIZES = 2  # frame sizes whose scratch arrays each thread keeps
_MARGIN = 2  # cells around the frame in the z-buffer's padded grid (see `_Grids`)
_STRIP_PIXELS = 16_384  # source pixels per strip: a strip's scratch arrays stay in cache
_HIGH_HALF = 1 if sys.byteorder == "little" else 0  # int32 half holding an int64's high bits


@dataclass(frozen=True)
class WarpResult:
    """A warped frame and the pixels the filler must invent."""

    image: np.ndarray  # (H, W, 3) uint8 RGB; hole pixels hold a copy of an edge pixel
    holes: np.ndarray  # (H, W) bool


@dataclass(frozen=True)
class WarpedDepth:
    """The depth of the target frame as seen from the new camera."""

    depth: np.ndarray  # (H, W) float32; hole pixels inpainted from their surroundings
    holes: np.ndarray  # (H, W) bool, the same holes as the image warp


@dataclass(frozen=True)
class WarpMap:
    """The backward map of one camera move over one depth map, reusable for any image."""

    map_xy: np.ndarray  # (H, W, 2) float32 source (column, row) sampled by each target pixel
    holes: np.ndarray  # (H, W) bool
    moved_depth: np.ndarray | None  # (H, W) float32 new-camera depth of every *source* pixel

    @property
    def map_x(self) -> np.ndarray:
        return self.map_xy[..., 0]

    @property
    def map_y(self) -> np.ndarray:
        return self.map_xy[..., 1]

    def apply(self, image: np.ndarray) -> WarpResult:
        """Sample `image` (the frame the depth belongs to) through the map."""
        _check_image(image, self.holes.shape)
        warped = cv2.remap(
            image, self.map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
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
    depth = _check_inputs(depth, K, rotation, translation, edge_threshold, image.shape[:2])
    if _is_identity(rotation, translation):
        return WarpResult(image=image.copy(), holes=np.zeros(image.shape[:2], dtype=bool))
    warp = _build_map(depth, K, rotation, translation, edge_threshold, keep_depth=False)
    return warp.apply(image)


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
    assert warp.moved_depth is not None  # warp_map always keeps it
    moved = cv2.remap(
        warp.moved_depth, warp.map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
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
    return _build_map(depth, K, rotation, translation, edge_threshold, keep_depth=True)


# ----------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Grids:
    """Read-only arrays that depend only on the frame size, shared by all threads.

    The z-buffer lives on a padded grid with a margin of `_MARGIN` cells: the inner ring
    collects landings just outside the frame (real neighbours for filling gaps at the
    frame's edge), the outer ring everything farther out or dropped (thrown away).
    """

    height: int
    width: int
    strip_rows: int  # source rows projected and splatted together
    padded_height: int
    padded_width: int
    columns: np.ndarray  # (W,) float32 0 … W-1
    rows: np.ndarray  # (H, 1) float32 0 … H-1
    padded_columns: np.ndarray  # (W,) float32 source column in the padded layout, + 0.5
    padded_rows: np.ndarray  # (H, 1) float32 source row in the padded layout, + 0.5
    target_xy: np.ndarray  # (H, W, 2) float32 (column, row) of every target pixel
    padded_index: np.ndarray  # (H, W) int64 flat index of each pixel in the padded grid


@lru_cache(maxsize=8)
def _grids(height: int, width: int) -> _Grids:
    columns = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    target_xy = np.empty((height, width, 2), dtype=np.float32)
    target_xy[..., 0] = columns
    target_xy[..., 1] = rows
    padded_width = width + 2 * _MARGIN
    padded_index = (
        (np.arange(height, dtype=np.int64)[:, None] + _MARGIN) * padded_width
        + np.arange(width, dtype=np.int64)[None, :]
        + _MARGIN
    )
    shift = np.float32(_MARGIN + 0.5)
    strip_rows = max(1, _STRIP_PIXELS // width)
    grids = _Grids(
        height, width, strip_rows, height + 2 * _MARGIN, padded_width, columns, rows,
        columns + shift, rows + shift, target_xy, padded_index,
    )
    for array in (grids.columns, grids.rows, grids.padded_columns, grids.padded_rows,
                  target_xy, padded_index):
        array.setflags(write=False)
    return grids


class _Workspace:
    """Scratch arrays for one frame size, reused frame after frame by one thread.

    Strip arrays hold `strip_rows` source rows plus a halo row on each side (torn edges
    look one row up and down); the rest is frame-sized.
    """

    def __init__(self, grids: _Grids) -> None:
        rows, width = grids.strip_rows, grids.width
        halo_shape = (rows + 2, width)
        self.x = np.empty(halo_shape, dtype=np.float32)  # landing, padded layout, + 0.5
        self.y = np.empty(halo_shape, dtype=np.float32)
        self.z = np.empty(halo_shape, dtype=np.float32)  # new-camera depth
        self.inverse = np.empty(halo_shape, dtype=np.float32)
        self.clipped = np.empty((rows, width), dtype=np.float32)
        self.column = np.empty((rows, width), dtype=np.int32)
        self.target32 = np.empty((rows, width), dtype=np.int32)
        self.target = np.empty(rows * width, dtype=np.int64)
        self.stretch_x = np.empty((rows, width - 1), dtype=np.float32)
        self.torn_x = np.empty((rows, width - 1), dtype=bool)
        self.stretch_y = np.empty((rows + 1, width), dtype=np.float32)
        self.torn_y = np.empty((rows + 1, width), dtype=bool)
        self.torn = np.empty((rows, width), dtype=bool)

        count = grids.height * width
        padded_count = grids.padded_height * grids.padded_width
        # z-buffer keys `depth_bits << 32 | source_index`: the low halves are written once
        # here, each frame only writes the depths into the high halves (a float32 view).
        self.keys = np.empty(count, dtype=np.int64)
        halves = self.keys.view(np.int32).reshape(count, 2)
        halves[:, 1 - _HIGH_HALF] = np.arange(count, dtype=np.int32)
        self.key_depths = self.keys.view(np.float32).reshape(count, 2)[:, _HIGH_HALF]
        self.zbuffer = np.empty(padded_count, dtype=np.int64)
        self.gathered = np.empty(padded_count, dtype=np.int64)
        # Per source pixel `source − landing` (x, y), entry N is the hole marker; the int64
        # view moves both halves in one 8-byte gather.
        self.pairs = np.empty((count + 1, 2), dtype=np.float32)
        self.pairs[count] = _HOLE


_local = threading.local()


def _workspace(grids: _Grids) -> _Workspace:
    """This thread's workspace for the size (a small LRU: two sizes in flight is typical)."""
    cache: dict[tuple[int, int], _Workspace] = _local.__dict__.setdefault("workspaces", {})
    key = (grids.height, grids.width)
    workspace = cache.pop(key, None)
    if workspace is None:
        workspace = _Workspace(grids)
    cache[key] = workspace  # most recently used last
    while len(cache) > _WORKSPACE_SIZES:
        del cache[next(iter(cache))]
    return workspace


def _build_map(
    depth: np.ndarray,
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
    edge_threshold: float,
    *,
    keep_depth: bool,
) -> WarpMap:
    height, width = depth.shape
    grids = _grids(height, width)
    work = _workspace(grids)
    move = _padded_move(K, rotation, translation)
    count = height * width
    work.zbuffer.fill(_EMPTY_KEY_HIGH << 32 | count)
    # Strip by strip, so the dozen intermediate arrays stay in cache: only the offsets,
    # the keys and the z-buffer itself are frame-sized.
    for start in range(0, height, grids.strip_rows):
        _splat_strip(depth, move, start, min(start + grids.strip_rows, height),
                     grids, work, edge_threshold)
    zbuffer = work.zbuffer
    zbuffer &= _LOW_32_BITS
    framed = zbuffer.reshape(grids.padded_height, grids.padded_width)
    framed[[0, -1]] = count  # the outer ring collected everything outside: all holes
    framed[:, [0, -1]] = count
    np.take(work.pairs.view(np.int64).reshape(-1), zbuffer, out=work.gathered, mode="clip")
    pairs = work.gathered.view(np.float32).reshape(-1, 2)
    _fill_small_gaps(pairs, grids)
    inner = pairs.reshape(grids.padded_height, grids.padded_width, 2)[
        _MARGIN:-_MARGIN, _MARGIN:-_MARGIN
    ]
    holes = inner[..., 0] < _HOLE_LIMIT
    map_xy = np.add(inner, grids.target_xy)
    moved_depth = work.key_depths.reshape(height, width).copy() if keep_depth else None
    return WarpMap(map_xy=map_xy, holes=holes, moved_depth=moved_depth)


def _padded_move(
    K: np.ndarray,  # noqa: N803
    rotation: np.ndarray,
    translation: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`(A, b)` with the homogeneous landing `z·A·[u, v, 1] + b` of a source pixel.

    `A = K·R·K⁻¹` and `b = K·t`, plus (margin + 0.5) × the third row added to the first
    two: that shifts the landing into the padded layout for free, with the half pixel
    that makes truncation round.
    """
    k = np.asarray(K, dtype=np.float64)
    a = k @ np.asarray(rotation, dtype=np.float64) @ np.linalg.inv(k)
    b = k @ np.asarray(translation, dtype=np.float64).reshape(3)
    a[:2] += (_MARGIN + 0.5) * a[2]
    b[:2] += (_MARGIN + 0.5) * b[2]
    return a, b


def _splat_strip(
    depth: np.ndarray,
    move: tuple[np.ndarray, np.ndarray],
    start: int,
    stop: int,
    grids: _Grids,
    work: _Workspace,
    edge_threshold: float,
) -> None:
    """Project source rows [start, stop), record their offsets and z-buffer them."""
    width = grids.width
    first, last = max(start - 1, 0), min(stop + 1, grids.height)  # with the halo rows
    halo = last - first
    own = slice(start - first, stop - first)
    x, y, z = work.x[:halo], work.y[:halo], work.z[:halo]
    _project_rows(depth[first:last], grids.rows[first:last], move, grids, work, halo)
    rows = stop - start
    flat = slice(start * width, stop * width)
    offsets = work.pairs[flat].reshape(rows, width, 2)
    np.subtract(grids.padded_columns, x[own], out=offsets[..., 0])
    np.subtract(grids.padded_rows[start:stop], y[own], out=offsets[..., 1])
    np.copyto(offsets[..., 0], _HOLE, where=_torn_rows(x[own], y, own.start, edge_threshold, work))
    np.copyto(work.key_depths[flat].reshape(rows, width), z[own])
    target = _target_cells(x[own], y[own], grids, work)
    np.minimum.at(work.zbuffer, target, work.keys[flat])


def _project_rows(
    depth: np.ndarray,
    rows: np.ndarray,
    move: tuple[np.ndarray, np.ndarray],
    grids: _Grids,
    work: _Workspace,
    count: int,
) -> None:
    """`work.x`, `.y` (landing, padded layout) and `.z` (new depth) of `count` rows.

    Points at depth ≤ MIN_DEPTH get NaN landings, which the z-buffer throws away.
    """
    a, b = move
    planes = (work.x[:count], work.y[:count], work.z[:count])
    for row, plane in enumerate(planes):
        # One broadcast add builds the plane A[row]·[u, v, 1] from a row and a column.
        np.add(
            np.float32(a[row, 0]) * grids.columns,
            np.float32(a[row, 1]) * rows + np.float32(a[row, 2]),
            out=plane,
        )
        plane *= depth
        if b[row] != 0.0:
            plane += np.float32(b[row])
    x, y, z = planes
    inverse = work.inverse[:count]
    with np.errstate(divide="ignore"):
        np.divide(np.float32(1.0), z, out=inverse)
    if z.min() <= MIN_DEPTH:  # rare: skip two passes when nothing is dropped
        np.copyto(inverse, np.float32(np.nan), where=z <= MIN_DEPTH)
    with np.errstate(invalid="ignore"):
        x *= inverse
        y *= inverse


def _torn_rows(
    x: np.ndarray, y_halo: np.ndarray, first: int, edge_threshold: float, work: _Workspace
) -> np.ndarray:
    """Which source pixels of the strip sit on a stretched depth edge.

    A pixel is torn when its right/down neighbour lands more than `edge_threshold` pixels
    further on (or it is that neighbour). Only stretching counts (a signed difference):
    where neighbours overlap, the z-buffer already decides who is visible. Both pixels of
    a torn pair are marked, because the pixels on either side of a depth edge carry
    colour blended across it. NaN landings (dropped points) compare false: they never
    tear. `y_halo` has the strip's rows from row `first` on, plus halo rows around them.
    """
    rows, width = x.shape
    halo = y_halo.shape[0]
    torn_x, torn_y = work.torn_x[:rows], work.torn_y[: halo - 1]
    with np.errstate(invalid="ignore"):
        stretch_x = np.subtract(x[:, 1:], x[:, :-1], out=work.stretch_x[:rows])
        np.greater(stretch_x, edge_threshold, out=torn_x)
        stretch_y = np.subtract(y_halo[1:], y_halo[:-1], out=work.stretch_y[: halo - 1])
        np.greater(stretch_y, edge_threshold, out=torn_y)
    torn = work.torn[:rows]
    torn[:, 0] = False
    torn[:, 1:] = torn_x
    torn[:, :-1] |= torn_x
    # Pair j joins halo rows j and j + 1; strip row i is halo row first + i.
    above = 1 - first  # the strip's first row has a pair above only if a halo row exists
    torn[above:] |= torn_y[first + above - 1 : first + rows - 1]
    below = min(rows, halo - 1 - first)  # rows that have a pair below
    torn[:below] |= torn_y[first : first + below]
    return torn


def _target_cells(x: np.ndarray, y: np.ndarray, grids: _Grids, work: _Workspace) -> np.ndarray:
    """Flat padded-grid cell of each landing; outside the margin (or NaN) → outer ring."""
    rows = x.shape[0]
    target, clipped = work.target32[:rows], work.clipped[:rows]
    # fmax/fmin (not clip) send NaN to the outer ring too and make the casts well defined;
    # truncation is floor for these non-negative values.
    np.fmax(y, np.float32(0.0), out=clipped)
    np.fmin(clipped, np.float32(grids.padded_height - 1), out=clipped)
    np.copyto(target, clipped, casting="unsafe")
    target *= grids.padded_width
    np.fmax(x, np.float32(0.0), out=clipped)
    np.fmin(clipped, np.float32(grids.padded_width - 1), out=clipped)
    column = work.column[:rows]
    np.copyto(column, clipped, casting="unsafe")
    target += column
    flat = work.target[: target.size]
    np.copyto(flat, target.reshape(-1))
    return flat


def _fill_small_gaps(pairs: np.ndarray, grids: _Grids) -> None:
    """Fill target pixels missed by rounding in a gently stretched surface, in place.

    `pairs` is the offset table of the padded target grid, one (x, y) row per cell. A
    pixel is a gap, not a hole, when both neighbours across it (left/right, else
    up/down) have a winner — the inner margin ring counts, so gaps on the frame's edge
    close too: its map is their mean. A second pass closes the crossings of a missed
    row and a missed column.
    """
    step = grids.padded_width
    inner = pairs[:, 0].reshape(grids.padded_height, step)[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN]
    candidates = grids.padded_index[inner < _HOLE_LIMIT]
    for _ in range(2):
        if candidates.size == 0:
            return
        filled = _mean_of_opposites(pairs, candidates, 1)
        vertical = _mean_of_opposites(pairs, candidates, step)
        use_vertical = (filled[:, 0] < _HOLE_LIMIT) & (vertical[:, 0] >= _HOLE_LIMIT)
        filled[use_vertical] = vertical[use_vertical]
        pairs[candidates] = filled
        candidates = candidates[filled[:, 0] < _HOLE_LIMIT]


def _mean_of_opposites(pairs: np.ndarray, candidates: np.ndarray, step: int) -> np.ndarray:
    """Mean offset of the two neighbours `step` before and after; a hole if either is."""
    before = pairs[candidates - step]
    after = pairs[candidates + step]
    mean = (before + after) * np.float32(0.5)
    either_hole = (before[:, 0] < _HOLE_LIMIT) | (after[:, 0] < _HOLE_LIMIT)
    mean[either_hole] = _HOLE
    return mean


def _is_identity(rotation: np.ndarray, translation: np.ndarray) -> bool:
    return bool(np.array_equal(rotation, np.eye(3))) and not bool(np.any(translation))


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
    if depth.ndim != 2 or depth.shape[0] < 2 or depth.shape[1] < 2:
        raise ValueError(f"depth must be (H, W) with both sides ≥ 2, got shape {depth.shape}")
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
