"""Depth-based forward warp of a frame to the next camera pose, with a z-buffer.

Every source pixel is unprojected with its depth, moved into the new camera frame
(`p_cur = R @ p_prev + t`, OpenCV axes: x right, y down, z forward), projected again, and
splatted to the target pixel it lands in. Where several land in one pixel the nearest wins
(a z-buffer). Colour is not splatted: the winning source coordinates form a *backward* map
(target pixel → sub-pixel source position) and one Lanczos `cv2.remap` samples the image,
so a 0.3 px move shifts the picture by 0.3 px instead of snapping to whole pixels.

How it stays fast (numpy + OpenCV, no Python loops over pixels):

* Projection is one `cv2.transform` per strip of rows: dividing the homogeneous point
  `z·A·[u, v, 1] + b` (`A = K·R·K⁻¹`, `b = K·t`) by the source depth z makes it linear
  in `(u, v, 1/z)`, i.e. a 3×4 matrix applied to a cached `(u, v, ·)` grid.
* The z-buffer is one `np.minimum.at` over int64 keys `depth_bits << 32 | source_index`.
  The bit pattern of a positive float32 orders like the float, so the smallest key is
  the nearest point; ties go to the lower source index, so results are deterministic.
  The index halves are written once per frame size; each frame writes only the depths.
* The winner's offset `source − landing position` is gathered per target pixel; the map
  is `target + offset`, exact to first order within the pixel.
* Sources are processed in strips of rows whose intermediates stay in cache, in a
  per-thread workspace allocated once per frame size: no fresh multi-megabyte
  temporaries (and their page faults) per frame. Tears are judged only at the few gaps,
  after the z-buffer, not for every source pixel.

Holes (`WarpResult.holes`) are target pixels that nothing landed on — new border content,
disocclusions — grown by one pixel, because the pixels along a depth edge carry colour
blended across it. Gaps that rounding leaves in a gently stretched surface (zoom-in,
rotation) are not holes: they are filled by interpolating the map from two opposite
neighbours. A gap whose neighbours come from source pixels stretched more than
`edge_threshold` times apart is a *tear* (a depth jump pulling apart, even by one
pixel) and stays a hole.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

DEFAULT_EDGE_THRESHOLD = 1.5
"""A gap whose two neighbours are this many times further apart than their sources tears."""

MIN_DEPTH = 1e-3
"""Points at or behind this depth in the new camera (scene units) are dropped."""

_HOLE = np.float32(-1.0e4)  # offset marking "no source": far outside any frame
_HOLE_LIMIT = np.float32(-1.0e3)  # offsets below this are holes (frames are ≤ 2048 px)
_DROPPED = np.float32(-1.0e9)  # landing given to dropped points: clips into the outer ring
_EMPTY_KEY_HIGH = 0x7FFFFFFF  # above every finite positive float32 bit pattern
_LOW_32_BITS = 0xFFFFFFFF
_HIGH_HALF = 1 if sys.byteorder == "little" else 0  # int32 half holding an int64's high bits
_MARGIN = 2  # cells around the frame in the z-buffer's padded grid (see `_Grids`)
_STRIP_PIXELS = 65_536  # source pixels per strip: fewer calls, scratch still in cache
_WORKSPACE_SIZES = 2  # frame sizes whose scratch arrays each thread keeps
_GROW_KERNEL = np.ones((3, 3), dtype=np.uint8)


@dataclass(frozen=True)
class WarpResult:
    """A warped frame and the pixels the filler must invent."""

    image: np.ndarray  # (H, W, 3) uint8 RGB; holes hold pixel (0, 0) or, on their rim, samples
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
        return WarpResult(image=_remap(image, self.map_xy), holes=self.holes)


def forward_warp(
    image: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    *,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
) -> WarpResult:
    """Warp `image` (RGB uint8, (H, W, 3)) seen with metric `depth` (z along the optical
    axis, (H, W), positive) by the camera move `(rotation, translation)` from
    `camera.relative_move`.

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
    K: np.ndarray,
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
    K: np.ndarray,
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
    source_uv: np.ndarray  # (H, W, 3) float32 (column, row, 0): the transform's input
    padded_columns: np.ndarray  # (W,) float32 source column in the padded layout, + 0.5
    padded_rows: np.ndarray  # (H, 1) float32 source row in the padded layout, + 0.5
    target_xy: np.ndarray  # (H, W, 2) float32 (column, row) of every target pixel


@lru_cache(maxsize=4)
def _grids(height: int, width: int) -> _Grids:
    columns = np.arange(width, dtype=np.float32)
    rows = np.arange(height, dtype=np.float32)[:, None]
    target_xy = np.empty((height, width, 2), dtype=np.float32)
    target_xy[..., 0] = columns
    target_xy[..., 1] = rows
    source_uv = np.zeros((height, width, 3), dtype=np.float32)
    source_uv[..., :2] = target_xy
    shift = np.float32(_MARGIN + 0.5)
    grids = _Grids(
        height, width, max(1, _STRIP_PIXELS // width), height + 2 * _MARGIN,
        width + 2 * _MARGIN, source_uv, columns + shift, rows + shift, target_xy,
    )
    for array in (source_uv, grids.padded_columns, grids.padded_rows, target_xy):
        array.setflags(write=False)
    return grids


class _Workspace:
    """Scratch arrays for one frame size, reused frame after frame by one thread.

    Strip arrays hold `strip_rows` source rows; the rest is frame-sized.
    """

    def __init__(self, grids: _Grids) -> None:
        rows, width = grids.strip_rows, grids.width
        # (u, v, 1/z) per source pixel; u and v are copied once, 1/z written per frame
        self.uvw = grids.source_uv.copy()
        self.homogeneous = np.empty((rows, width, 3), dtype=np.float32)
        self.x = np.empty((rows, width), dtype=np.float32)  # landing, padded layout, + 0.5
        self.y = np.empty((rows, width), dtype=np.float32)
        self.z = np.empty((rows, width), dtype=np.float32)  # new depth
        self.column = np.empty((rows, width), dtype=np.int32)
        self.target32 = np.empty((rows, width), dtype=np.int32)
        self.target = np.empty(rows * width, dtype=np.int64)

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
    K: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    edge_threshold: float,
    *,
    keep_depth: bool,
) -> WarpMap:
    height, width = depth.shape
    grids = _grids(height, width)
    work = _workspace(grids)
    matrix = _landing_matrix(K, rotation, translation)
    count = height * width
    work.zbuffer.fill(_EMPTY_KEY_HIGH << 32 | count)
    for start in range(0, height, grids.strip_rows):
        _splat_strip(depth, matrix, start, min(start + grids.strip_rows, height), grids, work)
    zbuffer = work.zbuffer
    zbuffer &= _LOW_32_BITS
    framed = zbuffer.reshape(grids.padded_height, grids.padded_width)
    framed[[0, -1]] = count  # the outer ring collected everything outside: all holes
    framed[:, [0, -1]] = count
    np.take(work.pairs.view(np.int64).reshape(-1), zbuffer, out=work.gathered, mode="clip")
    offsets = work.gathered.view(np.float32).reshape(grids.padded_height, grids.padded_width, 2)
    holes = offsets[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN, 0] < _HOLE_LIMIT
    _fill_small_gaps(work.gathered, holes, grids, edge_threshold)
    if holes.any():  # grow by a pixel: edge pixels carry colour blended across the edge
        holes = cv2.dilate(holes.view(np.uint8), _GROW_KERNEL).view(bool)
    map_xy = np.add(offsets[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN], grids.target_xy)
    moved_depth = work.key_depths.reshape(height, width).copy() if keep_depth else None
    return WarpMap(map_xy=map_xy, holes=holes, moved_depth=moved_depth)


def _landing_matrix(
    K: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
) -> np.ndarray:
    """(3, 4) matrix taking `(u, v, 1/z)` (+1) to the homogeneous landing divided by z.

    The landing of source pixel (u, v) at depth z is `z·A·[u, v, 1] + b` with
    `A = K·R·K⁻¹`, `b = K·t`; over z that is `A·[u, v, 1] + b/z`, linear in (u, v, 1/z).
    Its third coordinate is the new depth over z. (margin + 0.5) × the third row is added
    to the first two: that shifts the landing into the padded layout for free, with the
    half pixel that makes truncation round.
    """
    k = np.asarray(K, dtype=np.float64)
    a = k @ np.asarray(rotation, dtype=np.float64) @ np.linalg.inv(k)
    b = k @ np.asarray(translation, dtype=np.float64).reshape(3)
    matrix = np.column_stack([a[:, 0], a[:, 1], b, a[:, 2]])
    matrix[:2] += (_MARGIN + 0.5) * matrix[2]
    return matrix


def _splat_strip(
    depth: np.ndarray, matrix: np.ndarray, start: int, stop: int, grids: _Grids, work: _Workspace
) -> None:
    """Project source rows [start, stop), record their offsets and z-buffer them."""
    rows, width = stop - start, grids.width
    flat = slice(start * width, stop * width)
    x, y = _project_rows(depth, matrix, start, stop, work)
    offsets = work.pairs[flat].reshape(rows, width, 2)
    np.subtract(grids.padded_columns, x, out=offsets[..., 0])
    np.subtract(grids.padded_rows[start:stop], y, out=offsets[..., 1])
    target = _target_cells(x, y, grids, work)
    np.minimum.at(work.zbuffer, target, work.keys[flat])


def _project_rows(
    depth: np.ndarray, matrix: np.ndarray, start: int, stop: int, work: _Workspace
) -> tuple[np.ndarray, np.ndarray]:
    """Landing x, y (padded layout, + 0.5) of source rows [start, stop); their new depths
    go into the z-buffer keys.

    Dropped points (new depth ≤ MIN_DEPTH) land at `_DROPPED`, inside the outer ring
    once clipped; no NaN or infinity survives, so clipping and casting are well defined.
    """
    rows = stop - start
    x, y, z = work.x[:rows], work.y[:rows], work.z[:rows]
    # 1/z computed contiguous, then copied into the interleaved grid: faster than one
    # strided division
    np.copyto(work.uvw[start:stop, :, 2], np.divide(np.float32(1.0), depth[start:stop], out=z))
    homogeneous = work.homogeneous[:rows]
    cv2.transform(work.uvw[start:stop], matrix, dst=homogeneous)
    cv2.split(homogeneous, [x, y, z])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x, z, out=x)
        np.divide(y, z, out=y)
    np.multiply(z, depth[start:stop], out=z)  # the new depth
    if z.min() <= MIN_DEPTH:  # rare: skip two passes when nothing is dropped
        dropped = z <= MIN_DEPTH
        np.copyto(x, _DROPPED, where=dropped)
        np.copyto(y, _DROPPED, where=dropped)
    width = depth.shape[1]
    np.copyto(work.key_depths[start * width : stop * width].reshape(rows, width), z)
    return x, y


def _target_cells(x: np.ndarray, y: np.ndarray, grids: _Grids, work: _Workspace) -> np.ndarray:
    """Flat padded-grid cell of each landing; outside the margin → the outer ring.

    The landings carry the +0.5, so truncation (of these non-negative values) rounds.
    """
    rows = x.shape[0]
    target, column = work.target32[:rows], work.column[:rows]
    np.clip(y, np.float32(0.0), np.float32(grids.padded_height - 1), out=target,
            casting="unsafe")
    target *= grids.padded_width
    np.clip(x, np.float32(0.0), np.float32(grids.padded_width - 1), out=column,
            casting="unsafe")
    target += column
    flat = work.target[: target.size]
    np.copyto(flat, target.reshape(-1))  # ufunc.at would convert int32 indices itself
    return flat


RESAMPLER = cv2.INTER_LANCZOS4
"""How warped frames are sampled. The kandinsky loop warps each frame from the previous
one, so the resampler's loss compounds: over a 48-frame loop on a photo (coffee,
832×448) bilinear keeps 2–30 % of the detail, bicubic 86–216 % (it rings: detail grows
while the picture drifts from the true one), Lanczos-4 77–110 % and stays closest to a
single resample of the first frame (`python -m benchmarks.bench_quality --resamplers`)."""


def _remap(image: np.ndarray, map_xy: np.ndarray) -> np.ndarray:
    """Backward warp with `RESAMPLER`."""
    return cv2.remap(image, map_xy, None, RESAMPLER, borderMode=cv2.BORDER_REPLICATE)


_FILL_PASSES = (
    ((0, 1), (1, 0), (1, 1), (1, -1)),  # left/right, up/down, both diagonals
    ((0, 1), (1, 0)),
    ((0, 1), (1, 0)),
)
"""(row, column) steps to opposite neighbours, per gap-filling pass, in order of preference."""


def _fill_small_gaps(
    table: np.ndarray, holes: np.ndarray, grids: _Grids, edge_threshold: float
) -> None:
    """Fill target pixels missed by rounding in a stretched surface, in place.

    `table` is the int64 view of the padded grid's offset pairs (hole cells hold offsets
    below `_HOLE_LIMIT`); `holes` the (H, W) mask of pixels without a winner, cleared
    where a gap is filled. A pixel is a gap, not a hole, when both neighbours across it
    have a winner — the inner margin ring counts, so gaps on the frame's edge close
    too — and their sources lie no more than `edge_threshold` times closer together
    than they do: its offset is their mean. A gap whose neighbours' sources are
    stretched further apart is a tear in a depth edge and stays a hole.

    The first pass looks left/right, up/down and along both diagonals (the steps of a
    slanted missed row); two more look left/right and up/down only, closing the
    crossings of missed rows and columns without eating into the corners of real holes.
    Each pass reads the state before it, so the result does not depend on pixel order.
    Only hole pixels on the rim of their hole are looked at (a gap has a winner among
    its eight neighbours), by gathering: inside a wide hole, such as the new border of
    a fast turn, there is nothing to fill.
    """
    pw = grids.padded_width
    inside = cv2.erode(holes.view(np.uint8), _GROW_KERNEL).view(bool)  # off-frame: hole
    pixels = np.flatnonzero(holes > inside)
    cells = pixels + (pixels // grids.width) * (2 * _MARGIN) + (_MARGIN * pw + _MARGIN)
    for steps in _FILL_PASSES:
        if pixels.size == 0:
            return
        values = np.empty(pixels.size, dtype=np.int64)
        decided = np.zeros(pixels.size, dtype=bool)
        tears = np.zeros(pixels.size, dtype=bool)
        for dy, dx in steps:
            step = dy * pw + dx
            undecided = np.flatnonzero(~decided)
            before = table[cells[undecided] - step].view(np.float32).reshape(-1, 2)
            after = table[cells[undecided] + step].view(np.float32).reshape(-1, 2)
            both = (before[:, 0] >= _HOLE_LIMIT) & (after[:, 0] >= _HOLE_LIMIT)
            use = undecided[both]
            before, after = before[both], after[both]
            # the neighbours' backward maps are (position + offset): how far apart?
            apart_x = after[:, 0] - before[:, 0] + np.float32(2 * dx)
            apart_y = after[:, 1] - before[:, 1] + np.float32(2 * dy)
            source_distance = np.sqrt(apart_x * apart_x + apart_y * apart_y)
            tears[use] = 2.0 * np.hypot(dx, dy) > edge_threshold * source_distance
            values[use] = ((before + after) * np.float32(0.5)).view(np.int64).reshape(-1)
            decided[use] = True
        filled = decided & ~tears
        if not filled.any():
            return
        table[cells[filled]] = values[filled]
        holes.reshape(-1)[pixels[filled]] = False
        remaining = ~decided  # torn gaps are settled as holes; undecided ones may close
        pixels, cells = pixels[remaining], cells[remaining]


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
    K: np.ndarray,
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
    depth = np.ascontiguousarray(depth, dtype=np.float32)
    low, high = float(depth.min()), float(depth.max())
    if not (low > 0.0 and high < np.inf):  # NaN fails the first test
        raise ValueError(f"depth must be positive and finite, got values in [{low}, {high}]")
    return depth
