"""Anchored warping: every frame sampled once from a sharp source (SPEC §7).

Warping each frame from the previous one resamples the picture every frame, and the
losses compound: after 4 s a pan keeps a third of its detail. Engines that do not repaint
frames (the `preview` engine) instead warp an *anchor* — a sharp frame with its depth and
pose — straight to each frame's pose, so every frame is one bicubic resample of a sharp
picture.

* **A planar anchor** (depth that is a plane, as the ground plane under a photo or flat
  depth) maps to any pose by a homography, `H = K (R + t mᵀ) K⁻¹` with `mᵀ = wᵀ K` the
  plane `1/z = w · (u, v, 1)` (Hartley & Zisserman, *Multiple View Geometry*, §13.1).
  Outside the anchor the picture continues mirrored, fading into a blur of itself further
  out: entering content keeps the picture's grain at the seam, and no mirrored copy of a
  face or a sign becomes recognisable. No holes, no re-anchoring until the view leaves it.
* **Any other anchor** is forward-warped with its depth (`warp.warp_map`, z-buffered) after
  mirroring its picture and depth into a margin (`PAD_FRACTION`). Holes (disocclusions,
  the view past the margin) sample the background mirrored across the hole's edge
  (`_mirror_into_holes`): the texture next to the hole continues into it, in the same
  single resample.
* **A new anchor** is taken from the frame just made when the old one no longer covers
  the view well (too many holes, or too much of the view sampled from the mirror). Its
  depth is the old anchor's, carried along by the same move, so the geometry stays
  consistent (no jump at the switch) and no estimator runs again.
* The first anchor and the most recent ones are kept; each frame is sampled from the
  closest, so a camera that comes back (a full turn) finds the first frame again.

Everything here is numpy/OpenCV geometry: no model, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from kandanim.camera import Pose, relative_move
from kandanim.warp import warp_map

PAD_FRACTION = 0.125
"""Mirrored margin around a non-planar anchor, as a fraction of the frame's height."""

MAX_HOLE_FRACTION = 0.02
"""A frame with more holes than this becomes the next anchor."""

MAX_MIRRORED_FRACTION = 0.2
"""A non-planar anchor is renewed when more of the view than this comes from the mirror."""

MAX_PLANAR_MIRRORED_FRACTION = 0.5
"""A planar anchor is renewed when more of the view than this lies outside it."""

MIN_PLANE_DEPTH = 0.05
"""A planar anchor is renewed before its plane comes nearer than this (scene units)."""

SOFT_MIRROR_REACH = 0.15
"""How far past a photo's edge (fraction of the frame's shorter side) its mirror image
fades into a blur of itself."""

SOFT_MIRROR_BLUR = 0.03
"""The blur of shapes it fades into: Gaussian σ as a fraction of the frame's shorter side
(its grain finer than 1.5 px is kept)."""

KEEP_RECENT = 3
"""Anchors kept besides the first one of a stream."""

ROTATION_WEIGHT = 1.0  # per degree, in the anchor distance
TRANSLATION_WEIGHT = 20.0  # per scene unit: 0.05 units count as much as 1°

INTERPOLATION = cv2.INTER_LANCZOS4
"""Resampler of anchored frames. One sample at a half-pixel offset keeps 35 % of a photo's
detail bilinear, 66 % bicubic, 77 % Lanczos-4 (NOTES.md); on a 4 s in-place shot of
coffee at 448×256 bicubic keeps 80 %, Lanczos-4 88 %, at about 2× bicubic's cost."""

_PLANE_TOLERANCE = 1e-4  # relative residual of a plane fit to inverse depth
_MIRROR = cv2.BORDER_REFLECT_101


@dataclass(frozen=True)
class Layer:
    """A picture and its metric depth: RGB uint8 (H, W, 3), float32 (H, W) z in scene units."""

    image: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class Anchor:
    """A sharp frame later frames are sampled from, seen from `pose`.

    `key` names the anchor in checkpoints.
    """

    key: str
    front: Layer
    pose: Pose

    @property
    def image(self) -> np.ndarray:
        return self.front.image


@dataclass(frozen=True)
class AnchoredWarp:
    """A frame warped from an anchor, holes already filled, and the anchor it should
    become when the old one no longer covers the view (`next_anchor`, else None)."""

    image: np.ndarray  # (H, W, 3) uint8
    holes: np.ndarray  # (H, W) bool: pixels the front layer did not cover
    next_anchor: Anchor | None


def plane_of(depth: np.ndarray) -> np.ndarray | None:
    """(3,) w with 1/z = w · (u, v, 1) when `depth` ((H, W), positive) is a plane, else None.

    Fitted by least squares on the corners and centre, checked on a subsample.
    """
    height, width = depth.shape
    inverse = 1.0 / depth.astype(np.float64)
    rows = np.array([0, 0, height - 1, height - 1, height // 2])
    columns = np.array([0, width - 1, 0, width - 1, width // 2])
    design = np.column_stack([columns, rows, np.ones(rows.size)]).astype(np.float64)
    w, *_ = np.linalg.lstsq(design, inverse[rows, columns], rcond=None)
    step = max(1, min(height, width) // 16)
    v, u = np.mgrid[0:height:step, 0:width:step]
    predicted = w[0] * u + w[1] * v + w[2]
    sample = inverse[::step, ::step]
    if np.max(np.abs(predicted - sample)) > _PLANE_TOLERANCE * float(np.max(sample)):
        return None
    return w


class AnchorWarper:
    """Warps anchors to poses for one frame size and intrinsics `K` ((3, 3), square
    pixels, as from `camera.intrinsics`)."""

    def __init__(self, K: np.ndarray, width: int, height: int) -> None:
        self.K = np.asarray(K, dtype=np.float64)
        self.K_inv = np.linalg.inv(self.K)
        self.width, self.height = width, height
        self.pad = max(2, round(PAD_FRACTION * height))
        self.padded_K = self.K.copy()
        self.padded_K[0, 2] += self.pad
        self.padded_K[1, 2] += self.pad
        self._padded: dict[tuple[str, str], Layer] = {}
        self._planes: dict[str, np.ndarray | None] = {}

    def warp(self, anchor: Anchor, pose: Pose) -> AnchoredWarp:
        """`anchor` seen from `pose`: one resample of the anchor's picture."""
        rotation, translation = relative_move(anchor.pose, pose)
        if np.array_equal(rotation, np.eye(3)) and not np.any(translation):
            holes = np.zeros((self.height, self.width), dtype=bool)
            return AnchoredWarp(anchor.image.copy(), holes, None)
        plane = self._plane(anchor)
        if plane is not None:
            return self._warp_planar(anchor, plane, rotation, translation, pose)
        return self._warp_layered(anchor, rotation, translation, pose)

    def forget(self, keep: set[str]) -> None:
        """Drop what is cached for anchors no longer in use."""
        for cache_key in [k for k in self._padded if k[0] not in keep]:
            del self._padded[cache_key]
        for key in [k for k in self._planes if k not in keep]:
            del self._planes[key]

    # -- planar anchors: one homography ------------------------------------------------

    def _plane(self, anchor: Anchor) -> np.ndarray | None:
        if anchor.key not in self._planes:
            self._planes[anchor.key] = plane_of(anchor.front.depth)
        return self._planes[anchor.key]

    def _warp_planar(self, anchor: Anchor, plane: np.ndarray, rotation: np.ndarray,
                     translation: np.ndarray, pose: Pose) -> AnchoredWarp:
        m = self.K.T @ plane  # the plane as mᵀ X = 1 in the anchor's camera
        homography = self.K @ (rotation + np.outer(translation, m)) @ self.K_inv
        padded, pad = self._softly_padded(anchor)
        from_padded = homography @ np.array([[1.0, 0.0, -pad], [0.0, 1.0, -pad], [0, 0, 1.0]])
        image = cv2.warpPerspective(
            padded, from_padded, (self.width, self.height),
            flags=INTERPOLATION, borderMode=_MIRROR,
        )
        holes = np.zeros((self.height, self.width), dtype=bool)
        new_plane = self.K_inv.T @ _moved_plane(m, rotation, translation)
        # a plane's inverse depth is linear in the pixel: its extremes are at the corners
        corners = np.array([[0, 0, 1], [self.width - 1, 0, 1], [0, self.height - 1, 1],
                            [self.width - 1, self.height - 1, 1]], dtype=np.float64)
        inverse = corners @ new_plane
        # too near, or partly behind the camera
        too_near = float(inverse.max()) > 1.0 / MIN_PLANE_DEPTH or float(inverse.min()) < 0
        if not (too_near or self._outside_fraction(homography) > MAX_PLANAR_MIRRORED_FRACTION):
            return AnchoredWarp(image, holes, None)
        depth = _plane_depth(new_plane, self.width, self.height)  # only for the new anchor
        if float(depth.min()) <= 0 or not np.all(np.isfinite(depth)):
            # the plane passes behind the camera: keep the view, lose the tilt
            depth = np.full_like(depth, float(np.median(anchor.front.depth)))
        return AnchoredWarp(image, holes, _renewed(anchor, pose, Layer(image, depth)))

    def _outside_fraction(self, homography: np.ndarray) -> float:
        """Share of the view whose source lies outside the anchor (a coarse grid)."""
        u, v = np.meshgrid(np.linspace(0, self.width - 1, 17), np.linspace(0, self.height - 1, 17))
        points = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
        source = np.linalg.inv(homography) @ points
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = source[0] / source[2], source[1] / source[2]
        inside = (source[2] > 0) & (x >= 0) & (x <= self.width - 1) & (y >= 0)
        inside &= y <= self.height - 1
        return 1.0 - float(inside.mean())

    def _softly_padded(self, anchor: Anchor) -> tuple[np.ndarray, int]:
        """The anchor's picture continued past its edges (half the frame's longer side
        each way) by mirroring, its shapes blurred away the further out while its fine
        grain stays: the seam is continuous, the motion stays visible, and nothing
        recognisable (a mirrored face) appears further out. A Gaussian blur is isotropic,
        so the texture's direction is kept as well."""
        cache_key = (anchor.key, "soft")
        cached = self._padded.get(cache_key)
        pad = max(self.width, self.height) // 2
        if cached is None:
            mirrored = cv2.copyMakeBorder(anchor.image, pad, pad, pad, pad, _MIRROR)
            sigma = max(1.0, SOFT_MIRROR_BLUR * min(self.width, self.height))
            # far out: the shapes blurred away (the wide blur is smooth, so it is taken at a
            # quarter of the size), the fine grain (σ < 1.5 px) kept: motion stays visible.
            # far = shapes + (mirrored − fine blur), so far − mirrored = shapes − fine blur
            small = cv2.resize(mirrored, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
            shapes = cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / 4.0),
                                (mirrored.shape[1], mirrored.shape[0]),
                                interpolation=cv2.INTER_LINEAR)
            change = cv2.subtract(shapes, cv2.GaussianBlur(mirrored, (0, 0), 1.5),
                                  dtype=cv2.CV_16S)
            weight = _edge_ramp(mirrored.shape[:2], pad, anchor.image.shape[:2],
                                SOFT_MIRROR_REACH * min(self.width, self.height))
            soft = mirrored + change * weight[..., None]
            cached = Layer(np.clip(soft + 0.5, 0, 255).astype(np.uint8), anchor.front.depth)
            self._padded[cache_key] = cached
        return cached.image, pad

    # -- any depth: forward warp with a z-buffer ---------------------------------------

    def _padded_layer(self, anchor: Anchor) -> Layer:
        cache_key = (anchor.key, "front")
        padded = self._padded.get(cache_key)
        if padded is None:
            layer = anchor.front
            p = self.pad
            padded = Layer(cv2.copyMakeBorder(layer.image, p, p, p, p, _MIRROR),
                           cv2.copyMakeBorder(layer.depth, p, p, p, p, _MIRROR))
            self._padded[cache_key] = padded
        return padded

    def _warp_layered(self, anchor: Anchor, rotation: np.ndarray, translation: np.ndarray,
                      pose: Pose) -> AnchoredWarp:
        front = self._warp_layer(self._padded_layer(anchor), rotation, translation)
        holes = front.holes
        renew = holes.mean() > MAX_HOLE_FRACTION or front.mirrored > MAX_MIRRORED_FRACTION
        image = front.sample()
        if not renew:
            return AnchoredWarp(image, holes, None)
        return AnchoredWarp(image, holes, _renewed(anchor, pose, Layer(image, front.depth)))

    def _warp_layer(self, padded: Layer, rotation: np.ndarray,
                    translation: np.ndarray) -> _WarpedLayer:
        warp = warp_map(padded.depth, self.padded_K, rotation, translation)
        inner = (slice(self.pad, self.pad + self.height), slice(self.pad, self.pad + self.width))
        map_xy = np.ascontiguousarray(warp.map_xy[inner])
        holes = np.ascontiguousarray(warp.holes[inner])
        assert warp.moved_depth is not None
        depth = _carried_depth(warp.moved_depth, map_xy, holes)
        mirrored = self._mirrored_fraction(map_xy, holes)
        if holes.any():
            map_xy = _mirror_into_holes(map_xy, holes, _with_occluders(holes, depth, self.height))
        return _WarpedLayer(padded.image, map_xy, holes, depth, mirrored)

    def _mirrored_fraction(self, map_xy: np.ndarray, holes: np.ndarray) -> float:
        """Share of the frame's non-hole pixels sampled from the mirrored margin."""
        stride = 4  # a subsample is plenty for a threshold
        sample = map_xy[::stride, ::stride]
        x, y = sample[..., 0], sample[..., 1]
        outside = (x < self.pad) | (x > self.pad + self.width - 1)
        outside |= (y < self.pad) | (y > self.pad + self.height - 1)
        outside &= ~holes[::stride, ::stride]
        return float(outside.mean())


@dataclass(frozen=True)
class _WarpedLayer:
    source: np.ndarray  # the padded picture the map samples
    map_xy: np.ndarray  # (H, W, 2) float32, holes already mirrored in
    holes: np.ndarray
    depth: np.ndarray  # carried depth of the new view
    mirrored: float

    def sample(self) -> np.ndarray:
        return cv2.remap(self.source, self.map_xy, None, INTERPOLATION, borderMode=_MIRROR)


def _edge_ramp(shape: tuple[int, int], pad: int, inner: tuple[int, int],
               reach: float) -> np.ndarray:
    """(H, W) float32: 0 inside the inner picture (placed at `pad`, `pad`), rising as a
    smoothstep to 1 at `reach` px from its edge (Euclidean distance to the rectangle)."""
    rows = np.arange(shape[0], dtype=np.float32)[:, None]
    columns = np.arange(shape[1], dtype=np.float32)[None, :]
    dy = np.maximum(np.maximum(pad - rows, rows - (pad + inner[0] - 1)), 0.0)
    dx = np.maximum(np.maximum(pad - columns, columns - (pad + inner[1] - 1)), 0.0)
    ramp = np.minimum(np.sqrt(dx * dx + dy * dy) / np.float32(reach), 1.0)
    return ramp * ramp * (3.0 - 2.0 * ramp)


def _renewed(old: Anchor, pose: Pose, front: Layer) -> Anchor:
    number = int(old.key.rsplit(".", 1)[1])
    stream = old.key.rsplit(".", 1)[0]
    return Anchor(f"{stream}.{number + 1}", front, pose)


def _moved_plane(m: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """The plane mᵀ X = 1 of the old camera as m'ᵀ X' = 1 in the new one (X' = R X + t)."""
    rotated = rotation @ m  # mᵀ X = mᵀ Rᵀ (X' − t)
    return rotated / (1.0 + float(rotated @ translation))


def _plane_depth(w: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) float32 depth z of the plane 1/z = w · (u, v, 1)."""
    u = np.arange(width, dtype=np.float64)[None, :]
    v = np.arange(height, dtype=np.float64)[:, None]
    with np.errstate(divide="ignore"):
        return (1.0 / (w[0] * u + w[1] * v + w[2])).astype(np.float32)


def _carried_depth(moved_depth: np.ndarray, map_xy: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The new view's depth: the anchor's points as the new camera sees them, sampled
    through the same map; holes take the farthest depth around them (a disocclusion
    shows what lies behind)."""
    depth = cv2.remap(moved_depth, map_xy, None, cv2.INTER_NEAREST, borderMode=_MIRROR)
    if holes.any():
        grown = np.where(holes, 0.0, depth).astype(np.float32)
        kernel = np.ones((5, 5), np.uint8)
        for _ in range(64):  # grow inward until every hole has a value
            missing = grown <= 0
            if not missing.any():
                break
            np.copyto(grown, cv2.dilate(grown, kernel), where=missing)
        depth = np.where(holes, grown, depth)
    return np.maximum(depth, np.float32(1e-2)).astype(np.float32)


OCCLUDER_REACH = 0.03
"""How far (fraction of the frame's height) a hole's mirror keeps away from occluders."""

OCCLUDER_RATIO = 0.85
"""A pixel nearer than this × the background depth around a hole counts as occluder."""


def _with_occluders(holes: np.ndarray, depth: np.ndarray, height: int) -> np.ndarray:
    """`holes` plus the pixels near them that are clearly nearer than the background
    the hole reveals (its carried depth, the farthest around it)."""
    reach = max(1, round(OCCLUDER_REACH * height))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near_holes = cv2.dilate(holes.view(np.uint8), kernel).view(bool)
    background = cv2.dilate(np.where(holes, depth, 0.0).astype(np.float32), kernel)
    occluder = near_holes & (depth < np.float32(OCCLUDER_RATIO) * background)
    return holes | occluder


def _mirror_into_holes(map_xy: np.ndarray, holes: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """The map with every hole pixel sampling the background mirrored across the hole's
    edge: a hole pixel p whose nearest usable pixel is q (not excluded: neither hole nor
    occluder) takes the map of 2q − p, or of q when that is not usable. The texture next
    to the hole continues into it, crisp and in the picture's own grain, instead of a
    smooth smear; and it costs no second resample.
    """
    height, width = holes.shape
    usable = ~excluded
    if not usable.any():
        return map_xy
    _, labels = cv2.distanceTransformWithLabels(
        excluded.view(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    usable_rows, usable_columns = np.nonzero(usable)  # label k is the k-th, in raster order
    rows, columns = np.nonzero(holes)
    nearest = labels[rows, columns] - 1
    q_rows, q_columns = usable_rows[nearest], usable_columns[nearest]
    m_rows = np.clip(2 * q_rows - rows, 0, height - 1)
    m_columns = np.clip(2 * q_columns - columns, 0, width - 1)
    mirrored_ok = usable[m_rows, m_columns]
    source_rows = np.where(mirrored_ok, m_rows, q_rows)
    source_columns = np.where(mirrored_ok, m_columns, q_columns)
    result = map_xy.copy()
    result[rows, columns] = map_xy[source_rows, source_columns]
    return result


def anchor_distance(anchor: Anchor, pose: Pose) -> float:
    """How far `pose` is from the anchor's: degrees of rotation + weighted translation."""
    rotation, translation = relative_move(anchor.pose, pose)
    cosine = (float(np.trace(rotation)) - 1.0) / 2.0
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    return ROTATION_WEIGHT * angle + TRANSLATION_WEIGHT * float(np.linalg.norm(translation))


def closest_anchor(anchors: list[Anchor], pose: Pose) -> Anchor:
    """The anchor to sample `pose` from; ties go to the most recent."""
    best = anchors[-1]
    best_distance = anchor_distance(best, pose)
    for anchor in reversed(anchors[:-1]):
        distance = anchor_distance(anchor, pose)
        if distance < best_distance - 1e-9:
            best, best_distance = anchor, distance
    return best


def kept_anchors(anchors: list[Anchor]) -> list[Anchor]:
    """The first anchor and the `KEEP_RECENT` most recent: memory stays flat."""
    if len(anchors) <= KEEP_RECENT + 1:
        return list(anchors)
    return [anchors[0], *anchors[-KEEP_RECENT:]]


def focus_scale(depth: np.ndarray, focus_distance: float) -> float:
    """Factor that puts the subject at the centre of a frame at `focus_distance`.

    The subject's depth is the median over the central tenth of the frame (by side), so
    one odd pixel does not decide it. SPEC §4: orbits pivot at the focus distance.
    """
    height, width = depth.shape
    dy, dx = max(1, height // 20), max(1, width // 20)
    centre = depth[height // 2 - dy : height // 2 + dy + 1, width // 2 - dx : width // 2 + dx + 1]
    subject = float(np.median(centre))
    return focus_distance / subject if subject > 0 else 1.0
