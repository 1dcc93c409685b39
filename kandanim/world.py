"""The preview's built-in scene as a small 3D world, rendered from any camera pose.

A photo holds one view; the built-in landscape is ours, so instead of warping its first
frame the preview draws every frame from the scene itself (SPEC §7), in one of two ways
chosen per stream:

* **Turning in place** (no travel: `turn-*`, `tilt-*`, `spin-*`, `rotate-360`): the landscape
  is painted once as a cylindrical panorama 2π·f pixels round (f the focal length in
  pixels), its ends cross-faded, and each frame is one resample of it along the frame's
  viewing rays. A full turn shows the whole world and comes home to frame 0 exactly.
* **Travelling** (every other move): the landscape is painted once, half a frame wider on
  each side, as layers: the land (sky, mountains and hills as a backdrop plane at the hills'
  distance, the ground as its true plane) and every tree, rock and post as a billboard at
  its own distance. Each layer moves by its plane's homography and they are composited back
  to front with their soft edges: exact parallax and occlusion, nothing to inpaint
  (what an object hid is in the land layer), one resample per layer.

Homography of the plane mᵀX = 1 under the move X' = R X + t: `H = K (R + t mᵀ) K_src⁻¹`
(Hartley & Zisserman, *Multiple View Geometry*, 2nd ed., §13.1). Numpy/OpenCV only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from kandanim.procedural import SUBJECT_DISTANCE, procedural_layers
from kandanim.spec import FOCUS_DISTANCE

BACKDROP_DISTANCE = 26.0
"""Scene units: the hills' distance; sky and mountains move with them (a backdrop)."""

MIN_LAYER_DEPTH = 0.05
"""A billboard nearer than this (scene units) has been flown through and is not drawn."""

SUPERSAMPLE = 1.5
"""Travel layers are painted at this many times the frame's resolution. Every frame,
the first one included, is then the same kind of sample of the world: none is sharper
than the others because it happened to land on the painted pixel grid. (2 paints 1.8×
the pixels of 1.5 for the same detail figures; painting is most of a 4 s clip's start.)"""

_INTERPOLATION = cv2.INTER_CUBIC  # the panorama, painted at the frame's resolution
_LAYER_INTERPOLATION = cv2.INTER_LINEAR  # supersampled layers: bilinear is plenty
_MIRROR = cv2.BORDER_REFLECT_101


@dataclass(frozen=True)
class _Layer:
    colour: np.ndarray  # (h, w, 3) float32 premultiplied by alpha, or uint8 opaque
    alpha: np.ndarray | None  # (h, w) float32, None = opaque
    source_K: np.ndarray  # (3, 3): first camera's normalised rays → this layer's pixels
    m: np.ndarray  # (3,) its plane, mᵀ X = 1 in the first camera

    @functools.cached_property
    def from_pixels(self) -> np.ndarray:
        """(3, 3) inverse of `source_K`: this layer's pixels → normalised rays."""
        return np.linalg.inv(self.source_K)


class BuiltInWorld:
    """Frames of the procedural landscape `variant` seen through intrinsics `K` ((3, 3))
    at `width` × `height`, from poses relative to the first frame's camera.

    `turning_only`: the stream only rotates (the panorama way), else layers. `focus`:
    scene units put the subject at `spec.FOCUS_DISTANCE` (scenes moved by an effect).
    `descent`: how far (scene units) the camera comes down toward the ground at most, so
    enough ground is painted below the frame.
    """

    def __init__(self, width: int, height: int, variant: int, K: np.ndarray,
                 turning_only: bool, focus: bool = True, descent: float = 0.0) -> None:
        self.width, self.height = width, height
        self.K = np.asarray(K, dtype=np.float64)
        self.turning_only = turning_only
        # the world's own units put its subject (the boulder) at SUBJECT_DISTANCE; an
        # effect's put the subject at the focus distance (SPEC §4); `focus=False` (a pure
        # `camera:` scene) keeps the world's own units
        self.units = SUBJECT_DISTANCE / FOCUS_DISTANCE if focus else 1.0
        if turning_only:
            self._panorama, self._panorama_inverse_depth, self._centre = _panorama(
                width, height, variant, self.K
            )
            self._margin = (self._panorama.shape[0] - height) // 2
        else:
            below = _ground_rows_below(height, max(0.0, descent) * self.units)
            self._layers = _travel_layers(width, height, variant, self.K, below)

    def view(self, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8: the world after the camera move `X' = R X + t` (OpenCV axes,
        scene units, from `camera.relative_move(first_pose, pose)`)."""
        rotation, translation = self._move(rotation, translation)
        if self.turning_only:
            return self._turned(rotation)
        return self._travelled(rotation, translation)

    def view_depth(self, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """(H, W) float32: the true depth (z, scene units) of `view(rotation, translation)`:
        what the picture's motion is measured against in tests and benchmarks."""
        rotation, translation = self._move(rotation, translation)
        if self.turning_only:
            depth = self._turned(rotation, self._panorama_inverse_depth)
        else:
            depth = np.empty((self.height, self.width), np.float32)
            self._travelled(rotation, translation, depth)
        return depth / np.float32(self.units)

    def _move(self, rotation: np.ndarray, translation: np.ndarray) -> tuple[np.ndarray, ...]:
        rotation = np.asarray(rotation, dtype=np.float64)
        translation = np.asarray(translation, dtype=np.float64).reshape(3) * self.units
        return rotation, translation

    # -- turning: a cylindrical panorama --------------------------------------------------

    def _turned(self, rotation: np.ndarray,
                inverse_depth: np.ndarray | None = None) -> np.ndarray:
        """The panorama along this rotation's viewing rays; or, given the panorama's
        `inverse_depth` (1 / horizontal distance), the depth z of each ray's point."""
        focal, cy = self.K[1, 1], self.K[1, 2]
        u = (np.arange(self.width, dtype=np.float32) - np.float32(self.K[0, 2])) / np.float32(focal)
        v = (np.arange(self.height, dtype=np.float32) - np.float32(cy)) / np.float32(focal)
        # viewing rays in the first camera's frame: Rᵀ · (u, v, 1)
        r = rotation.T.astype(np.float32)
        dx = r[0, 0] * u[None, :] + r[0, 1] * v[:, None] + r[0, 2]
        dy = r[1, 0] * u[None, :] + r[1, 1] * v[:, None] + r[1, 2]
        dz = r[2, 0] * u[None, :] + r[2, 1] * v[:, None] + r[2, 2]
        horizontal = np.sqrt(dx * dx + dz * dz)
        map_x = (np.arctan2(dx, dz) * np.float32(focal) + np.float32(self._centre)).astype(
            np.float32
        )
        # rows above and below the painting read its mirrored margin (`_panorama`)
        margin = self._margin
        map_y = np.clip(dy / np.maximum(horizontal, np.float32(1e-6)) * np.float32(focal)
                        + np.float32(cy + margin), 0, self.height + 2 * margin - 1).astype(
            np.float32
        )
        if inverse_depth is not None:  # a point at horizontal distance r lies at z = r / |d_h|
            nearness = cv2.remap(inverse_depth, map_x, map_y, cv2.INTER_NEAREST,
                                 borderMode=cv2.BORDER_WRAP)
            return 1.0 / (np.maximum(nearness, np.float32(1e-6)) * horizontal)
        return cv2.remap(self._panorama, map_x, map_y, _INTERPOLATION,
                         borderMode=cv2.BORDER_WRAP)

    # -- travelling: planes composited back to front --------------------------------------

    def _travelled(self, rotation: np.ndarray, translation: np.ndarray,
                   depth: np.ndarray | None = None) -> np.ndarray:
        """Composite the layers; with `depth` ((H, W) float32) also write each pixel's
        depth z (world units) of the layer that covers it most."""
        land, ground, *billboards = self._layers
        canvas = self._land(land, ground, rotation, translation, depth)
        for layer in billboards:
            self._over_billboard(canvas, layer, rotation, translation, depth)
        return canvas

    def _plane_depth(self, layer: _Layer, rotation: np.ndarray, translation: np.ndarray,
                     rows: slice, columns: slice) -> np.ndarray:
        """Depth z of the layer's plane after the move, over a block of target pixels."""
        turned = rotation @ layer.m  # the plane mᵀX = 1 seen from the moved camera
        moved = turned / (1.0 + float(turned @ translation))
        w = np.linalg.inv(self.K).T @ moved  # 1/z = w · (u, v, 1)
        u = np.arange(columns.start, columns.stop, dtype=np.float32)[None, :]
        v = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
        inverse = np.float32(w[0]) * u + np.float32(w[1]) * v + np.float32(w[2])
        return 1.0 / np.maximum(inverse, np.float32(1e-6))

    def _homography(self, layer: _Layer, rotation: np.ndarray,
                    translation: np.ndarray) -> np.ndarray:
        """Layer pixel → target pixel."""
        motion = rotation + np.outer(translation, layer.m)
        return self.K @ motion @ layer.from_pixels

    def _land(self, backdrop: _Layer, ground: _Layer, rotation: np.ndarray,
              translation: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """Backdrop above the line where the ground meets it, ground below: each warped
        only over the rows it can cover."""
        to_ground = self._homography(ground, rotation, translation)
        to_backdrop = self._homography(backdrop, rotation, translation)
        line = _junction_line(to_ground, ground.colour.shape[1], self.width)
        canvas = np.empty((self.height, self.width, 3), np.uint8)
        everywhere = (slice(0, self.height), slice(0, self.width))
        if depth is not None:
            depth[:] = self._plane_depth(backdrop, rotation, translation, *everywhere)
        if line is None:  # the ground is out of sight (or all of it is behind)
            self._warp_rows(backdrop, to_backdrop, 0, self.height, canvas)
            return canvas
        signed, low, high = line
        first_ground = max(0, min(self.height, math.floor(low)))
        last_backdrop = max(first_ground, min(self.height, math.ceil(high) + 1))
        if last_backdrop > 0:
            self._warp_rows(backdrop, to_backdrop, 0, last_backdrop, canvas[:last_backdrop])
        if first_ground < self.height:
            below = np.empty((self.height - first_ground, self.width, 3), np.uint8)
            self._warp_rows(ground, to_ground, first_ground, self.height, below)
            shared = last_backdrop - first_ground
            if shared > 0:
                rows = np.arange(first_ground, last_backdrop, dtype=np.float32)[:, None]
                on_ground = signed(rows) > 0  # ground side of the line, in the shared band
                np.copyto(canvas[first_ground:last_backdrop], below[:shared],
                          where=on_ground[..., None])
            canvas[last_backdrop:] = below[shared:]
            if depth is not None:
                rows = np.arange(self.height, dtype=np.float32)[:, None]
                on_ground = signed(rows) > 0
                ground_depth = self._plane_depth(ground, rotation, translation, *everywhere)
                np.copyto(depth, ground_depth, where=on_ground)
        return canvas

    def _warp_rows(self, layer: _Layer, homography: np.ndarray, first: int, last: int,
                   out: np.ndarray) -> None:
        """Warp `layer` into `out`, which holds target rows [first, last)."""
        shift = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, -first], [0.0, 0.0, 1.0]])
        cv2.warpPerspective(layer.colour, shift @ homography, (self.width, last - first),
                            dst=out, flags=_LAYER_INTERPOLATION, borderMode=_MIRROR)

    def _over_billboard(self, canvas: np.ndarray, layer: _Layer, rotation: np.ndarray,
                        translation: np.ndarray, depth: np.ndarray | None = None) -> None:
        distance = 1.0 / layer.m[2]  # fronto-parallel: z = 1 / m_z in the first camera
        if distance * rotation[2, 2] + translation[2] < MIN_LAYER_DEPTH:
            return  # roughly: its centre is now behind or at the camera
        homography = self._homography(layer, rotation, translation)
        h, w = layer.colour.shape[:2]
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64).T
        landed = homography @ corners
        if np.any(landed[2] <= 0):
            return
        xs, ys = landed[0] / landed[2], landed[1] / landed[2]
        x0, x1 = max(math.floor(xs.min()) - 1, 0), min(math.ceil(xs.max()) + 2, self.width)
        y0, y1 = max(math.floor(ys.min()) - 1, 0), min(math.ceil(ys.max()) + 2, self.height)
        if x0 >= x1 or y0 >= y1:
            return
        local = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ homography
        rgba = cv2.warpPerspective(layer.colour, local, (x1 - x0, y1 - y0),
                                   flags=_LAYER_INTERPOLATION, borderMode=cv2.BORDER_CONSTANT)
        # premultiplied "over": result = colour + (1 - alpha) · below
        alpha = rgba[..., 3:].astype(np.float32) * np.float32(1.0 / 255.0)
        region = canvas[y0:y1, x0:x1]
        below = region.astype(np.float32) * (1.0 - alpha)
        below += rgba[..., :3]
        np.copyto(region, below + 0.5, casting="unsafe")
        if depth is not None:
            block = (slice(y0, y1), slice(x0, x1))
            own = self._plane_depth(layer, rotation, translation, *block)
            np.copyto(depth[block], own, where=alpha[..., 0] > 0.5)


def _junction_line(to_target: np.ndarray, layer_width: int, width: int):
    """The ground layer's top row (where it meets the backdrop) in the target: a signed
    distance function of rows over the frame's columns (> 0 on the ground side), and the
    lowest and highest row the line reaches inside the frame; None when the ground is
    not in front of the camera."""
    ends = to_target @ np.array([[0.0, layer_width], [0.0, 0.0], [1.0, 1.0]])
    inside = to_target @ np.array([layer_width / 2.0, 50.0, 1.0])  # a point of the ground
    if np.any(ends[2] <= 0) or inside[2] <= 0:
        return None
    (x0, x1), (y0, y1) = ends[0] / ends[2], ends[1] / ends[2]
    normal = np.array([y0 - y1, x1 - x0])
    length = float(np.hypot(*normal))
    if length == 0.0:
        return None
    normal /= length
    if normal @ np.array([inside[0] / inside[2] - x0, inside[1] / inside[2] - y0]) < 0:
        normal = -normal
    columns = np.arange(width, dtype=np.float32)[None, :]
    nx, ny = np.float32(normal[0]), np.float32(normal[1])

    def signed(rows: np.ndarray) -> np.ndarray:
        return nx * (columns - np.float32(x0)) + ny * (rows - np.float32(y0))

    if abs(normal[1]) < 1e-6:  # a vertical line: every row is shared
        return signed, 0.0, float("inf")
    # the line's row at the frame's left and right edges
    at_left = y0 + normal[0] * x0 / normal[1]
    at_right = y0 - normal[0] * (width - 1 - x0) / normal[1]
    return signed, min(at_left, at_right), max(at_left, at_right)


CAMERA_HEIGHT = 0.79
"""World units from the camera down to the ground (the painter's ground plane: its
bottom row 2 units away, 0.54 of the frame height below the horizon, 40° field of view)."""


def _ground_rows_below(height: int, descent: float) -> int:
    """Rows of ground to paint under the frame for a camera `descent` world units lower:
    the bottom row then sees ground (1 − horizon)·H·(h / (h − d) − 1) rows further down;
    capped at one frame height (beyond it the ground continues mirrored)."""
    if descent <= 0:
        return 0
    lowest = max(CAMERA_HEIGHT - descent, 0.25 * CAMERA_HEIGHT)
    return min(height, math.ceil(0.54 * height * (CAMERA_HEIGHT / lowest - 1.0)) + 2)


def _travel_layers(width: int, height: int, variant: int, K: np.ndarray,
                   below: int = 0) -> list[_Layer]:
    """Land backdrop, ground and billboards, painted half a frame wider on each side (and
    `below` rows lower) at `SUPERSAMPLE` times the resolution."""
    margin = height // 2
    plate_width = round((width + 2 * margin) * SUPERSAMPLE)
    plate_height = round(height * SUPERSAMPLE)
    painted = procedural_layers(plate_width, plate_height, variant,
                                below=round(below * SUPERSAMPLE))
    # camera pixel x (centre convention) ↔ plate pixel sx·(x + margin + ½) − ½, and rows
    # alike: the plate covers exactly the frame's rows and the widened frame's columns
    sx, sy = plate_width / (width + 2 * margin), plate_height / height
    to_plate = np.array([[sx, 0.0, sx * (margin + 0.5) - 0.5], [0.0, sy, sy * 0.5 - 0.5],
                         [0.0, 0.0, 1.0]])
    plate_K = to_plate @ K
    backdrop = _Layer(painted.land, None, plate_K, np.array([0.0, 0.0, 1.0 / BACKDROP_DISTANCE]))
    # ground: 1/z = a·row + b over plate rows; it meets the backdrop where 1/z is the
    # backdrop's, and its layer starts at that row
    a, b = painted.ground
    junction = max(0, min(plate_height - 1, math.floor((1.0 / BACKDROP_DISTANCE - b) / a)))
    plane_in_camera_pixels = np.array([0.0, a * sy, a * (sy * 0.5 - 0.5) + b])
    ground = _Layer(np.ascontiguousarray(painted.land[junction:]), None,
                    _shifted(plate_K, 0.0, junction), K.T @ plane_in_camera_pixels)
    layers = [backdrop, ground]
    for billboard in painted.billboards:
        alpha = np.clip(billboard.alpha, 0.0, 1.0)
        rgba = np.empty(alpha.shape + (4,), np.uint8)  # premultiplied, 8 bits: one warp
        np.copyto(rgba[..., :3], billboard.colour * alpha[..., None] + 0.5, casting="unsafe")
        np.copyto(rgba[..., 3], alpha * 255.0 + 0.5, casting="unsafe")
        layers.append(_Layer(rgba, None,
                             _shifted(plate_K, billboard.left, billboard.top),
                             np.array([0.0, 0.0, 1.0 / billboard.distance])))
    return layers


def _shifted(source_K: np.ndarray, left: float, top: float) -> np.ndarray:
    """`source_K` for a layer whose pixel (0, 0) is the plate's (left, top)."""
    return np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]]) @ source_K


SKY_AND_GROUND_BANDS = 0.15
"""Fraction of the painting's height, at its top (sky) and bottom (ground), tiled
beyond it when the camera tilts past the panorama."""


def _wrapped(painted: np.ndarray, around: int, overlap: int) -> np.ndarray:
    """The first `around` columns, the `overlap` painted past them cross-faded into the
    start: the painting then wraps round without a seam."""
    start, wrapped = painted[:, :overlap].astype(np.float32), painted[:, around:]
    fade = np.linspace(0.0, 1.0, overlap, dtype=np.float32)[None, :, None]
    blended = wrapped.astype(np.float32) * (1.0 - fade) + start * fade
    result = np.ascontiguousarray(painted[:, :around])
    result[:, :overlap] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return result


def _mirrored_tiles(band: np.ndarray, rows: int, *, above: bool) -> np.ndarray:
    """`rows` rows continuing `band` away from the painting: mirrored, then mirrored back,
    and so on (no seam where the copies meet)."""
    pair = np.concatenate([band, band[::-1]] if above else [band[::-1], band])
    reps = -(-rows // pair.shape[0])
    tiles = np.concatenate([pair] * reps)
    # above: the rows nearest the painting come last; below: first
    return np.ascontiguousarray(tiles[-rows:] if above else tiles[:rows])


def _panorama(width: int, height: int, variant: int,
              K: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The landscape painted round a cylinder of radius f: (3H, 2πf, 3) uint8 with a
    mirrored margin of H rows above and below, its inverse depth (same rows), and
    the column the first frame's optical axis looks at. Its two ends are cross-faded so the
    seam (behind the first view) does not show."""
    focal = float(K[1, 1])
    around = max(width, round(2.0 * math.pi * focal))
    overlap = max(8, around // 16)
    layers = procedural_layers(around + overlap, height, variant)
    painted = _wrapped(layers.image, around, overlap)
    land = _wrapped(layers.land, around, overlap)
    # above and below the painting: its sky and its ground (without the objects that
    # stand on it) mirrored again and again, so tilting past it keeps their texture
    margin = height
    band = max(2, round(SKY_AND_GROUND_BANDS * height))
    panorama = np.concatenate([
        _mirrored_tiles(land[:band], margin, above=True), painted,
        _mirrored_tiles(land[-band:], margin, above=False),
    ])
    inverse_depth = np.ascontiguousarray(layers.inverse_depth[:, :around])
    inverse_depth = cv2.copyMakeBorder(inverse_depth, margin, margin, 0, 0,
                                       cv2.BORDER_REPLICATE)
    # the painter centres the view on its middle column; cx maps there
    centre = (around + overlap) / 2.0 - 0.5 + (float(K[0, 2]) - (width - 1) / 2.0)
    return panorama, np.ascontiguousarray(inverse_depth), centre
