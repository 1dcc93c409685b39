"""A built-in landscape with known depth: the first frame of the `preview` engine.

`procedural_scene(width, height, variant)` paints a sky with clouds, far hazy mountains,
wooded hills, a textured ground plane with a winding path and field rows, and trees, rocks
and fence posts standing on the ground. It returns the picture and its true inverse depth
(1 / distance in scene units, larger = nearer), so tests can check depth estimators and the
warp against ground truth.

How it is built (numpy + OpenCV; all randomness from one generator seeded by `variant`):

* Features live in *scene coordinates*: `v` from 0 (top) to 1 (bottom) and
  `u = (x - W/2) / H`, so one variant at another aspect ratio shows the same landscape,
  cropped wider or narrower. Noise grids have fixed sizes (independent of the frame size)
  and are upsampled with `cv2.resize`, which is fast.
* Images are planar (3, H, W) while painting: numpy broadcasts a (H, W) weight over a
  leading channel axis far faster than over a trailing one of length 3.
* Layers are composited with a soft z-test (nearer wins), so occlusion between hills,
  ground and objects follows from their depths, not from drawing order.
* Atmospheric haze is applied per layer from its distance: far things fade toward the
  horizon colour, as in a photograph (and as the heuristic depth expects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

_FOV_DEG = 40.0  # vertical field of view the ground plane is drawn for (SPEC §5 default)
_FOCAL = 0.5 / math.tan(math.radians(_FOV_DEG) / 2.0)  # in frame heights
_U_SPAN = 2.0  # noise grids cover u in [-2, 2]: aspect ratios up to 4:1
_SKY_INVERSE_DEPTH = 1.0 / 1000.0
_NEAREST_DISTANCE = 2.0  # distance of the ground at the bottom row of the frame
SUBJECT_DISTANCE = 5.0
"""Scene units to the boulder in the middle of every variant: the built-in subject."""

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class _Palette:
    sky_top: Colour
    sky_horizon: Colour
    cloud_light: Colour
    cloud_dark: Colour
    mountains: Colour
    snow: Colour
    hills: Colour
    ground_near: Colour
    ground_far: Colour
    field_stripe: Colour
    path: Colour
    foliage: Colour
    trunk: Colour
    rock: Colour
    post: Colour
    sun: Colour
    sun_height: float  # v of the sun's centre; > 1 hides it below the frame
    haze_distance: float  # scene units over which ~63 % of a colour turns to haze
    cloudiness: float  # 0 clear … 1 overcast


_PALETTES: tuple[_Palette, ...] = (
    _Palette(  # summer day
        sky_top=(52, 110, 196), sky_horizon=(192, 218, 238),
        cloud_light=(252, 252, 250), cloud_dark=(168, 182, 204),
        mountains=(96, 118, 150), snow=(236, 240, 246), hills=(58, 104, 52),
        ground_near=(84, 140, 46), ground_far=(132, 166, 80), field_stripe=(182, 170, 72),
        path=(196, 170, 124), foliage=(40, 100, 38), trunk=(86, 60, 40),
        rock=(138, 132, 122), post=(112, 82, 56), sun=(255, 250, 226),
        sun_height=0.10, haze_distance=90.0, cloudiness=0.45,
    ),
    _Palette(  # sunset
        sky_top=(50, 42, 110), sky_horizon=(252, 170, 104),
        cloud_light=(252, 164, 140), cloud_dark=(112, 64, 106),
        mountains=(104, 78, 120), snow=(250, 196, 180), hills=(66, 58, 80),
        ground_near=(106, 78, 44), ground_far=(172, 118, 78), field_stripe=(156, 112, 42),
        path=(214, 150, 100), foliage=(54, 64, 38), trunk=(58, 40, 34),
        rock=(120, 96, 92), post=(74, 50, 40), sun=(255, 226, 156),
        sun_height=0.34, haze_distance=55.0, cloudiness=0.55,
    ),
    _Palette(  # misty autumn morning
        sky_top=(130, 156, 184), sky_horizon=(228, 226, 216),
        cloud_light=(248, 246, 240), cloud_dark=(180, 186, 194),
        mountains=(140, 150, 162), snow=(244, 244, 244), hills=(90, 106, 88),
        ground_near=(150, 100, 40), ground_far=(184, 152, 98), field_stripe=(120, 108, 48),
        path=(184, 162, 130), foliage=(190, 96, 34), trunk=(74, 54, 42),
        rock=(124, 120, 112), post=(98, 76, 60), sun=(250, 246, 230),
        sun_height=1.5, haze_distance=40.0, cloudiness=0.7,
    ),
    _Palette(  # winter dusk
        sky_top=(26, 38, 84), sky_horizon=(136, 130, 178),
        cloud_light=(176, 168, 206), cloud_dark=(62, 66, 108),
        mountains=(120, 130, 170), snow=(214, 220, 240), hills=(60, 74, 102),
        ground_near=(204, 212, 232), ground_far=(166, 170, 206), field_stripe=(146, 156, 194),
        path=(124, 114, 122), foliage=(24, 62, 54), trunk=(48, 38, 36),
        rock=(90, 94, 112), post=(64, 52, 50), sun=(255, 240, 220),
        sun_height=1.5, haze_distance=70.0, cloudiness=0.35,
    ),
)


@dataclass(frozen=True)
class Billboard:
    """One object (tree, rock, post) as drawn: a fronto-parallel patch standing on the
    ground at `distance` scene units, at pixel (`left`, `top`) of the frame."""

    left: int
    top: int
    colour: np.ndarray  # (h, w, 3) float32 RGB in [0, 255], haze applied
    alpha: np.ndarray  # (h, w) float32 in [0, 1]: coverage, already z-tested against the land
    distance: float


@dataclass(frozen=True)
class SceneLayers:
    """The landscape as painted, in layers a renderer can move apart.

    `land` is everything but the objects (sky, mountains, hills, ground; what they hide);
    `billboards` the objects far to near; `ground` = (a, b) with the ground's inverse
    depth a·row + b (rows in pixels, below the horizon); `horizon` the horizon's row.
    """

    image: np.ndarray  # (H, W, 3) uint8, all layers
    inverse_depth: np.ndarray  # (H, W) float32
    land: np.ndarray  # (H, W, 3) uint8
    land_inverse_depth: np.ndarray  # (H, W) float32
    billboards: tuple[Billboard, ...]
    ground: tuple[float, float]
    horizon: float


def procedural_scene(width: int, height: int, variant: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A landscape and its true inverse depth.

    Returns `(image, inverse_depth)`: RGB uint8 (H, W, 3) and float32 (H, W), larger =
    nearer (1 / distance in scene units; the sky is 1/1000). Deterministic per
    (width, height, variant); variants differ in palette (time of day) and layout.
    """
    layers = procedural_layers(width, height, variant)
    return layers.image, layers.inverse_depth


def procedural_layers(width: int, height: int, variant: int = 0, below: int = 0) -> SceneLayers:
    """`procedural_scene`, keeping the land and each object apart (see `SceneLayers`).

    `below` > 0 paints that many more rows of ground under the frame (the images and
    depths then have `height + below` rows; everything in the frame is unchanged): the
    land a camera sees when it comes down toward the ground."""
    if width < 8 or height < 8:
        raise ValueError(f"procedural_scene needs at least 8x8 pixels, got {width}x{height}")
    palette = _PALETTES[variant % len(_PALETTES)]
    rng = np.random.default_rng([0x6B616E64, variant])  # 'kand' + variant
    frame = _Grid(width, height)
    horizon = 0.46 + 0.06 * (rng.random() - 0.5)
    horizon_row = math.ceil(horizon * height)

    # Each layer is painted only over the rows where it can show: the ground covers
    # everything below the horizon, and it hides the hills a little lower still.
    canvas = np.empty((3, height + below, width), np.float32)
    canvas[:] = _rgb(palette.sky_horizon)
    depth = np.full((height + below, width), _SKY_INVERSE_DEPTH, np.float32)
    sky_rows = frame.band(0, min(horizon_row + 2, height))
    sky_small = sky_rows.reduced(max(height // 2, 8))  # all soft: half resolution will do
    canvas[:, : sky_rows.rows] = sky_rows.upsample(sky_small, _sky(sky_small, rng, palette,
                                                                  horizon))
    for layer in (_mountains, _hills):
        band, colour, layer_depth, coverage = layer(frame, rng, palette, horizon)
        rows = slice(band.row0, band.row1)
        _composite(canvas[:, rows], depth[rows], colour, layer_depth, coverage)
    # a fine grain over everything the ground does not cover: haze and bright clouds
    # would otherwise leave flat patches where motion is invisible
    canvas[:, : sky_rows.rows] += sky_rows.noise(rng, 160.0, octaves=2) * 7.0
    ground_rows = _Grid(width, height, max(horizon_row - 1, 0), height + below)
    rows = slice(ground_rows.row0, ground_rows.row1)
    _composite(canvas[:, rows], depth[rows], *_ground(ground_rows, rng, palette, horizon))
    land, land_depth = _interleaved(canvas), depth.copy()
    billboards: list[Billboard] = []
    _draw_objects(canvas, depth, frame, rng, palette, horizon, billboards)
    # ground inverse depth (v - horizon) / ((1 - horizon) · nearest), v = (row + 0.5) / H
    slope = 1.0 / ((1.0 - horizon) * _NEAREST_DISTANCE)
    ground = (slope / height, slope * (0.5 / height - horizon))
    return SceneLayers(_interleaved(canvas), depth, land, land_depth, tuple(billboards), ground,
                       horizon * height - 0.5)


def _interleaved(canvas: np.ndarray) -> np.ndarray:
    planes = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return cv2.merge(list(planes))  # planar → interleaved, far faster than a transpose copy


# ----------------------------------------------------------------------------- noise


class _Grid:
    """Pixel ↔ scene coordinates for a band of rows [row0, row1) of a frame, and noise."""

    def __init__(self, width: int, height: int, row0: int = 0, row1: int | None = None) -> None:
        self.width, self.height = width, height
        self.row0, self.row1 = row0, height if row1 is None else row1
        self.rows = self.row1 - self.row0
        self.u = ((np.arange(width, dtype=np.float32) + 0.5) - width / 2.0) / height
        self.v = (np.arange(self.row0, self.row1, dtype=np.float32) + 0.5) / height
        self.pixel = 1.0 / height  # one pixel in scene units

    def band(self, row0: int, row1: int) -> _Grid:
        """The same frame restricted to rows [row0, row1)."""
        row0, row1 = max(row0, 0), min(row1, self.height)
        return _Grid(self.width, self.height, row0, max(row1, row0 + 1))

    def noise(self, rng: np.random.Generator, freq: float, octaves: int = 1,
              stretch: float = 1.0, gain: float = 0.5) -> np.ndarray:
        """Fractal value noise over the band, zero-mean, roughly within [-1, 1].

        `freq` is grid cells per frame height; `stretch` > 1 makes features wider than
        tall. The random draws depend only on the arguments, not on the frame size.
        """
        # Octaves are summed on the grids themselves: upsample ×2 (cubic), add the next
        # octave's cells, repeat; then one cubic upsample to a few pixels per cell and one
        # bilinear affine warp onto the band. Cheap whatever the frequencies.
        fy, fx = freq, freq / stretch
        cells_y, cells_x = math.ceil(fy) + 4, math.ceil(fx * 2 * _U_SPAN) + 4
        total = rng.random((cells_y, cells_x), dtype=np.float32) - 0.5
        amplitude = 1.0
        for _ in range(octaves - 1):
            amplitude *= gain
            total = cv2.resize(total, (total.shape[1] * 2, total.shape[0] * 2),
                               interpolation=cv2.INTER_CUBIC)
            total += amplitude * (rng.random(total.shape, dtype=np.float32) - 0.5)
        total *= 2.0 / _amplitude_sum(octaves, gain)
        level = 2 ** (octaves - 1)  # finest cells per coarse cell
        pixels_per_cell = self.height / (fy * level)
        factor = max(math.ceil(pixels_per_cell / 3.0), 1)
        if factor > 1:
            total = cv2.resize(total, (total.shape[1] * factor, total.shape[0] * factor),
                               interpolation=cv2.INTER_CUBIC)
        # An upsampled sample index s sits at coarse index (s + 0.5) / (level * factor) - 0.5
        # and coarse index i at u = (i - 1) / fx - U_SPAN, v = (i - 1) / fy.
        scale = level * factor

        def sample_index(coord: float, per_unit: float, span: float) -> float:
            coarse = (coord + span) * per_unit + 1.0
            return (coarse + 0.5) * scale - 0.5

        x_first = sample_index(float(self.u[0]), fx, _U_SPAN)
        y_first = sample_index(float(self.v[0]), fy, 0.0)
        matrix = np.array([[fx * scale / self.height, 0.0, x_first],
                           [0.0, fy * scale / self.height, y_first]], np.float32)
        return cv2.warpAffine(total, matrix, (self.width, self.rows),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT)

    def reduced(self, work_height: int) -> _Grid:
        """This band on a smaller frame of the same aspect (`work_height` rows in all)."""
        k = work_height / self.height
        work_width = max(round(self.width * k), 1)
        small_row0 = max(math.floor(self.row0 * k) - 1, 0)
        # a band reaching below the frame (land painted past it) keeps going
        limit = work_height if self.row1 <= self.height else math.ceil(self.row1 * k) + 2
        small_row1 = min(math.ceil(self.row1 * k) + 2, limit)
        return _Grid(work_width, work_height, small_row0, small_row1)

    def upsample(self, small: _Grid, values: np.ndarray) -> np.ndarray:
        """Bilinearly upsample (rows, W) or planar (C, rows, W) values painted on `small`."""
        k = small.height / self.height
        up_rows = max(round(small.rows / k), 1)
        # row j of the upsampled band lies at frame row small.row0 / k + j (centres align)
        first = round(self.row0 - small.row0 / k)
        planes = values if values.ndim == 3 else values[None]
        out = np.empty((planes.shape[0], self.rows, self.width), np.float32)
        for plane, target in zip(planes, out):
            up = cv2.resize(plane, (self.width, up_rows), interpolation=cv2.INTER_LINEAR)
            target[:] = _fit_rows(up[first:first + self.rows], self.rows)
        return out if values.ndim == 3 else out[0]

    def ridge(self, rng: np.random.Generator, freq: float, octaves: int) -> np.ndarray:
        """1-D fractal noise along u (a skyline), shape (W,), roughly in [-1, 1]."""
        total = np.zeros(self.width, np.float32)
        amplitude = 1.0
        for octave in range(octaves):
            f = freq * 2**octave
            count = math.ceil(f * 2 * _U_SPAN) + 2
            knots = rng.random(count).astype(np.float32) * 2 - 1
            total += amplitude * _smooth_interp((self.u + _U_SPAN) * f, knots)
            amplitude *= 0.5
        return total / _amplitude_sum(octaves, 0.5)


def _fit_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Pad (by edge) or cut an array to exactly `rows` rows (guards rounding)."""
    if array.shape[0] < rows:
        return np.pad(array, ((0, rows - array.shape[0]), (0, 0)), mode="edge")
    return array[:rows]


def _amplitude_sum(octaves: int, gain: float) -> float:
    return float(sum(gain**o for o in range(octaves)))


def _smooth_interp(positions: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Smoothstep-eased interpolation of `knots` at fractional `positions`."""
    index = np.clip(np.floor(positions).astype(np.int64), 0, len(knots) - 2)
    frac = np.clip(positions - index, 0.0, 1.0)
    ease = frac * frac * (3 - 2 * frac)
    return (knots[index] * (1 - ease) + knots[index + 1] * ease).astype(np.float32)


def _patch_noise(rng: np.random.Generator, shape: tuple[int, int], cells: tuple[int, int],
                 ) -> np.ndarray:
    """Smooth noise in [-1, 1] over a small (h, w) patch with (cy, cx) grid cells."""
    grid = rng.random((cells[0] + 1, cells[1] + 1), dtype=np.float32) * 2 - 1
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


# ----------------------------------------------------------------------------- painting


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _rgb(colour: Colour) -> np.ndarray:
    """A colour as a planar (3, 1, 1) array that broadcasts over (3, H, W)."""
    return np.asarray(colour, np.float32).reshape(3, 1, 1)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend a → b by t ((H, W) weights over planar (3, H, W) colours)."""
    return a + (b - a) * t


def _haze(colour: np.ndarray, inverse_depth: np.ndarray, palette: _Palette) -> np.ndarray:
    """Atmospheric perspective: blend toward the horizon colour with distance."""
    distance = 1.0 / np.maximum(inverse_depth, 1e-6)
    transmission = np.exp(-distance / palette.haze_distance).astype(np.float32)
    return _mix(_rgb(palette.sky_horizon), colour, transmission)


def _composite(canvas: np.ndarray, depth: np.ndarray, colour: np.ndarray,
               layer_depth: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """Draw a layer where it covers and is nearer than what is there (soft z-test);
    returns the (H, W) opacity it was drawn with."""
    # Softened over about one row of ground depth to anti-alias ground/hill seams.
    nearer = np.clip((layer_depth - depth) * 400.0 + 0.5, 0.0, 1.0)
    alpha = (coverage * nearer).astype(np.float32)
    canvas += (colour - canvas) * alpha
    np.copyto(depth, layer_depth, where=alpha > 0.5)
    return alpha


def _ground_inverse_depth(v: np.ndarray, horizon: float) -> np.ndarray:
    """Inverse distance of flat ground seen by a level camera: linear in the row."""
    return (np.maximum(v - horizon, 0.0) / ((1.0 - horizon) * _NEAREST_DISTANCE)).astype(
        np.float32
    )


# ----------------------------------------------------------------------------- layers


def _sky(grid: _Grid, rng: np.random.Generator, palette: _Palette, horizon: float) -> np.ndarray:
    v = grid.v[:, None]
    u = grid.u[None, :]
    height_above = np.clip((horizon - v) / horizon, 0.0, 1.0)
    sky = _mix(_rgb(palette.sky_horizon), _rgb(palette.sky_top), np.sqrt(height_above))
    sky = np.broadcast_to(sky, (3, grid.rows, grid.width)).astype(np.float32)

    sun_u = 0.3 * (rng.random() - 0.5)
    sun_distance = np.sqrt((u - sun_u) ** 2 + (v - palette.sun_height) ** 2)
    glow = np.exp(-sun_distance / 0.1) * 0.5 + _smoothstep(0.034, 0.026, sun_distance)
    sky = _mix(sky, _rgb(palette.sun), np.clip(glow, 0.0, 1.0).astype(np.float32))

    wisps = grid.noise(rng, 12.0, octaves=3, stretch=5.0)  # faint streaks: no flat sky
    cirrus = grid.noise(rng, 40.0, octaves=2, stretch=3.0)
    sky += wisps * 8.0 + cirrus * 7.0

    density = grid.noise(rng, 3.0, octaves=5, stretch=2.5)
    shade = grid.noise(rng, 10.0, octaves=2, stretch=1.5)
    threshold = 0.3 - 0.7 * palette.cloudiness
    cover = _smoothstep(threshold, threshold + 0.45, density)
    cover *= _smoothstep(0.02, 0.3, height_above)  # clouds thin out toward the horizon
    # lit tops, darker bellies: brightness follows the density and a finer texture
    light = np.clip(0.5 + 0.45 * (density - threshold) + 0.3 * shade, 0.0, 0.97)
    cloud = _mix(_rgb(palette.cloud_dark), _rgb(palette.cloud_light), light)
    return _mix(sky, cloud, cover * 0.92)


Layer = tuple["_Grid", np.ndarray, np.ndarray, np.ndarray]  # band, colour, depth, coverage


def _layer_band(frame: _Grid, ridge: np.ndarray, nearest: float, horizon: float) -> _Grid:
    """Rows from a skyline down to where the ground becomes nearer than `nearest`."""
    top = math.floor(float(ridge.min()) * frame.height) - 1
    foot = horizon + nearest * (1.0 - horizon) * _NEAREST_DISTANCE  # ground is nearer below
    return frame.band(top, math.ceil(foot * frame.height) + 3)


def _mountains(frame: _Grid, rng: np.random.Generator, palette: _Palette,
               horizon: float) -> Layer:
    """Distant ridges (65–95 units): strong haze, craggy texture, pale peaks."""
    peaks = frame.ridge(rng, 1.8, 5)
    ridge = horizon - 0.1 - 0.16 * peaks
    distance = 80.0 + 15.0 * frame.ridge(rng, 0.6, 2)
    grid = _layer_band(frame, ridge, 1.2 / float(distance.min()), horizon)
    v = grid.v[:, None]
    below = v - ridge[None, :]
    coverage = np.clip(below / grid.pixel + 0.5, 0.0, 1.0)
    slope = np.clip(below / 0.15, 0.0, 1.0)
    inverse_depth = (1.0 / distance)[None, :] * (1.0 + 0.2 * slope)

    crags = np.abs(grid.noise(rng, 16.0, octaves=4, stretch=0.5))
    gullies = grid.noise(rng, 40.0, octaves=2, stretch=0.35)
    light = 0.78 + 0.35 * crags + 0.12 * gullies + 0.15 * (1.0 - slope)
    colour = _rgb(palette.mountains) * light
    snow_line = _smoothstep(0.06, 0.0, below + 0.02 * gullies) * _smoothstep(-0.2, 0.6, peaks)
    colour = _mix(colour, _rgb(palette.snow) * (0.9 + 0.1 * crags), snow_line)
    colour = _haze(colour, inverse_depth, palette)
    return grid, colour, inverse_depth.astype(np.float32), coverage.astype(np.float32)


def _hills(frame: _Grid, rng: np.random.Generator, palette: _Palette,
           horizon: float) -> Layer:
    """Rolling wooded hills (20–32 units) whose feet meet the ground plane."""
    ridge = horizon - 0.02 - 0.06 * (frame.ridge(rng, 2.0, 4) * 0.5 + 0.5)
    treetops = np.abs(frame.ridge(rng, 60.0, 2)) * 0.006  # a lumpy wooded outline
    distance = 26.0 + 6.0 * frame.ridge(rng, 0.9, 2)
    grid = _layer_band(frame, ridge, 1.3 / float(distance.min()), horizon)
    v = grid.v[:, None]
    below = v - ridge[None, :]
    coverage = np.clip((below - treetops[None, :]) / grid.pixel + 0.5, 0.0, 1.0)
    slope = np.clip(below / 0.07, 0.0, 1.0)
    inverse_depth = (1.0 / distance)[None, :] * (1.0 + 0.3 * slope)

    crowns = grid.noise(rng, 70.0, octaves=2)  # individual tree crowns seen from afar
    groves = grid.noise(rng, 9.0, octaves=2)
    light = 0.78 + 0.3 * crowns + 0.15 * groves + 0.18 * (1 - slope)
    colour = _rgb(palette.hills) * light
    colour = _haze(colour, inverse_depth, palette)
    return grid, colour, inverse_depth.astype(np.float32), coverage.astype(np.float32)


def _ground(grid: _Grid, rng: np.random.Generator, palette: _Palette,
            horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ground plane, textured in its own coordinates so texture shrinks with distance.

    Colour, fields, path and haze are smooth and painted at half resolution; only the
    fine grass texture is sampled per pixel.
    """
    texture = _GroundTexture(rng)
    path_phase, path_offset = rng.random() * 6.28, 0.8 * (rng.random() - 0.5)
    small = grid.reduced(max(grid.height // 2, 8))
    colour = grid.upsample(small, _ground_colour(small, texture, palette, horizon,
                                                 path_phase, path_offset))

    inverse_depth, distance, lateral = _ground_coordinates(grid, horizon)
    coverage = np.clip((grid.v[:, None] - horizon) / grid.pixel - 0.5, 0.0, 1.0)
    visible = _texture_visibility(grid, distance, horizon)
    detail = np.ones(inverse_depth.shape, np.float32)
    for freq, squeeze, amount in ((12.0, 1.0, 0.14), (40.0, 3.0, 0.12)):  # grass, blades
        weight = visible(freq)
        shown = np.flatnonzero(weight[:, 0] > 0)  # rows where this frequency shows at all
        if shown.size:
            rows = slice(int(shown[0]), None)
            sampled = texture.sample(lateral[rows] * squeeze, distance[rows], freq)
            detail[rows] += amount * sampled * weight[rows]
    colour *= detail
    coverage = np.broadcast_to(coverage, inverse_depth.shape).astype(np.float32)
    return colour, inverse_depth, coverage


def _ground_coordinates(grid: _Grid, horizon: float) -> tuple[np.ndarray, ...]:
    """(inverse depth, distance Z, lateral X) of the ground under every pixel of the band."""
    v = np.broadcast_to(grid.v[:, None], (grid.rows, grid.width))
    inverse_depth = _ground_inverse_depth(v, horizon)
    distance = 1.0 / np.maximum(inverse_depth, 1e-3)
    lateral = grid.u[None, :] / _FOCAL * distance
    return inverse_depth, distance, lateral


def _texture_visibility(grid: _Grid, distance: np.ndarray,
                        horizon: float) -> Callable[[float], np.ndarray]:
    """A function freq → weight that fades a texture frequency out before it aliases."""
    # pixels per scene unit along the ground's depth axis, where foreshortening is strongest
    pixels_per_unit = (1.0 - horizon) * _NEAREST_DISTANCE * grid.height / distance**2

    def visible(freq: float) -> np.ndarray:
        return np.clip(pixels_per_unit / (freq * 3.0) - 0.5, 0.0, 1.0)

    return visible


def _ground_colour(grid: _Grid, texture: _GroundTexture, palette: _Palette, horizon: float,
                   path_phase: float, path_offset: float) -> np.ndarray:
    inverse_depth, distance, lateral = _ground_coordinates(grid, horizon)
    visible = _texture_visibility(grid, distance, horizon)
    tufts = texture.sample(lateral, distance, 3.0) * visible(3.0)
    clumps = texture.sample(lateral, distance, 0.6)
    fields = _smoothstep(-0.1, 0.3, texture.sample(lateral, distance, 0.06))
    rows = 0.5 + 0.5 * np.sin(lateral * 5.0 + 0.3 * distance)  # crop rows converge in depth

    base = _mix(_rgb(palette.ground_far), _rgb(palette.ground_near),
                np.clip(inverse_depth * 2.5, 0.0, 1.0))
    colour = _mix(base, _rgb(palette.field_stripe), fields * (0.2 + 0.5 * rows))
    colour = colour * (0.84 + 0.16 * clumps + 0.14 * tufts)
    path_centre = 1.1 * np.sin(distance * 0.16 + path_phase) + path_offset
    path = _smoothstep(0.32, 0.24, np.abs(lateral - path_centre) + 0.04 * tufts)
    gravel = _rgb(palette.path) * (0.9 + 0.08 * tufts)
    colour = _mix(colour, gravel, path)
    return _haze(colour, inverse_depth, palette)


class _GroundTexture:
    """Value noise over the ground plane (X, Z), sampled with perspective by `remap`.

    The random grid is upsampled once with a cubic filter so that the per-pixel lookup
    can be a cheap bilinear one without visible creases; the table tiles seamlessly.
    """

    _CELLS = 96
    _UPSAMPLE = 4

    def __init__(self, rng: np.random.Generator) -> None:
        cells = rng.random((self._CELLS, self._CELLS), dtype=np.float32) * 2 - 1
        side = self._CELLS * self._UPSAMPLE
        # upsample with a wrapped margin and cut it off again: the table tiles seamlessly
        margin = 2
        padded = np.pad(cells, margin, mode="wrap")
        up = cv2.resize(padded, (padded.shape[1] * self._UPSAMPLE,) * 2,
                        interpolation=cv2.INTER_CUBIC)
        cut = margin * self._UPSAMPLE
        self.table = np.ascontiguousarray(up[cut:cut + side, cut:cut + side])

    def sample(self, lateral: np.ndarray, distance: np.ndarray, freq: float) -> np.ndarray:
        side = self._CELLS * self._UPSAMPLE
        map_x = (lateral * (freq * self._UPSAMPLE) + side / 2 + 37.0 * freq).astype(np.float32)
        map_y = (distance * (freq * self._UPSAMPLE) + 53.0 * freq).astype(np.float32)
        return cv2.remap(self.table, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# ----------------------------------------------------------------------------- objects


@dataclass(frozen=True)
class _Placed:
    distance: float
    kind: str  # 'tree' | 'rock' | 'post'
    u: float  # horizontal position of the base, frame heights from the centre
    size: float  # height in scene units
    seed: int


def _draw_objects(canvas: np.ndarray, depth: np.ndarray, grid: _Grid,
                  rng: np.random.Generator, palette: _Palette, horizon: float,
                  billboards: list[Billboard]) -> None:
    """Trees, rocks and a fence standing on the ground, each painted inside its box."""
    placed: list[_Placed] = []

    def place(kind: str, distance: float, u: float, size: float) -> None:
        placed.append(_Placed(distance, kind, u, size, int(rng.integers(1 << 31))))

    for _ in range(9):
        distance = 7.0 * (30.0 / 7.0) ** rng.random()
        place("tree", distance, (rng.random() - 0.5) * 1.7, 2.2 + 1.4 * rng.random())
    for _ in range(5):
        distance = 2.8 * (12.0 / 2.8) ** rng.random()
        place("rock", distance, (rng.random() - 0.5) * 1.5, 0.3 + 0.35 * rng.random())
    # a fence receding from near the left or right edge toward the middle distance
    side = 1.0 if rng.random() < 0.5 else -1.0
    start, step = 4.0 + 1.5 * rng.random(), 0.9
    lateral_start = side * (1.3 + 0.4 * rng.random())
    for post in range(10):
        distance = start + step * post
        lateral = lateral_start - side * 0.12 * post
        place("post", distance, lateral * _FOCAL / distance, 0.7)
    # a boulder in the middle: the subject orbits circle and `look-around` shows round
    place("rock", SUBJECT_DISTANCE, 0.06 * (rng.random() - 0.5), 1.0)

    for item in sorted(placed, key=lambda p: -p.distance):  # far to near
        billboard = _draw_object(canvas, depth, grid, palette, horizon, item)
        if billboard is not None:
            billboards.append(billboard)


def _draw_object(canvas: np.ndarray, depth: np.ndarray, grid: _Grid, palette: _Palette,
                 horizon: float, item: _Placed) -> Billboard | None:
    base_v = horizon + (1.0 - horizon) * _NEAREST_DISTANCE / item.distance
    size = item.size * _FOCAL / item.distance  # object height in frame heights
    half_width = {"tree": 0.36, "rock": 0.9, "post": 0.05}[item.kind] * size
    x0 = math.floor((item.u - half_width) * grid.height + grid.width / 2.0) - 1
    x1 = math.ceil((item.u + half_width) * grid.height + grid.width / 2.0) + 2
    y0 = math.floor((base_v - size) * grid.height) - 2
    y1 = math.ceil((base_v + 0.05 * size) * grid.height) + 2
    x0c, x1c = max(x0, 0), min(x1, grid.width)
    y0c, y1c = max(y0, 0), min(y1, grid.height)
    if x0c >= x1c or y0c >= y1c:
        return None
    # local coordinates in object heights: origin at the base centre, py up
    px = ((grid.u[x0c:x1c] - item.u) / size)[None, :]
    py = ((base_v - grid.v[y0c:y1c]) / size)[:, None]
    rng = np.random.default_rng(item.seed)
    painter = {"tree": _tree, "rock": _rock, "post": _post}[item.kind]
    colour, coverage = painter(px, py, rng, palette, size * grid.height)
    inverse_depth = np.full(coverage.shape, 1.0 / item.distance, np.float32)
    colour = _haze(colour, inverse_depth, palette)
    alpha = _composite(canvas[:, y0c:y1c, x0c:x1c], depth[y0c:y1c, x0c:x1c], colour,
                       inverse_depth, coverage)
    return Billboard(x0c, y0c, np.ascontiguousarray(colour.transpose(1, 2, 0)), alpha,
                     item.distance)


def _edge(signed: np.ndarray, pixel: float) -> np.ndarray:
    """Anti-aliased coverage from a signed distance-like field (> 0 inside)."""
    return np.clip(signed / pixel + 0.5, 0.0, 1.0).astype(np.float32)


def _tree(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    pixel = 1.0 / max(pixels, 1.0)  # one pixel in object units
    shape = (py.shape[0], px.shape[1])
    trunk = _edge(0.035 - np.abs(px + 0.02 * py), pixel) * (py < 0.5) * (py > -0.03)
    # the crown is the union of a few overlapping lumps around a central ellipse
    crown_field = 1.0 - np.sqrt((px / 0.26) ** 2 + ((py - 0.62) / 0.3) ** 2)
    for _ in range(5):
        cx, cy = (rng.random() - 0.5) * 0.34, 0.5 + 0.35 * rng.random()
        r = 0.1 + 0.08 * rng.random()
        crown_field = np.maximum(crown_field, 1.0 - np.sqrt((px - cx) ** 2 + (py - cy) ** 2) / r)
    leaves = _patch_noise(rng, shape, (14, 10))
    fine = _patch_noise(rng, shape, (40, 28))
    crown = _edge((crown_field + 0.06 * leaves) * 0.2, pixel)
    sunlit = np.clip(0.45 + 0.9 * (py - 0.55) + 0.5 * px, 0.0, 1.0)  # light from upper right
    shade = 0.5 + 0.4 * sunlit + 0.16 * leaves + 0.12 * fine
    foliage = _rgb(palette.foliage) * shade
    bark = _rgb(palette.trunk) * (0.8 + 0.15 * fine + 0.2 * (px > 0))
    colour = _mix(bark, foliage, crown)
    return colour.astype(np.float32), np.maximum(trunk, crown)


def _rock(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    pixel = 1.0 / max(pixels, 1.0)
    shape = (py.shape[0], px.shape[1])
    rx, ry = 0.75 + 0.15 * rng.random(), 1.0
    lumps = _patch_noise(rng, shape, (3, 4))
    grain = _patch_noise(rng, shape, (16, 22)) + 0.5 * _patch_noise(rng, shape, (40, 56))
    field = 1.0 - np.sqrt((px / rx) ** 2 + (py / ry) ** 2) + 0.12 * lumps
    coverage = _edge(field * 0.5, pixel) * (py > -0.04)
    lit = np.clip(0.5 + 0.6 * py + 0.3 * px / rx, 0.0, 1.0)
    colour = _rgb(palette.rock) * (0.55 + 0.45 * lit + 0.14 * grain)
    return colour.astype(np.float32), coverage


def _post(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    pixel = 1.0 / max(pixels, 1.0)
    shape = (py.shape[0], px.shape[1])
    half_width = 0.045
    coverage = _edge(half_width - np.abs(px), pixel) * _edge(1.0 - py, pixel) * (py > -0.03)
    grain = _patch_noise(rng, shape, (12, 2))
    lit = 0.75 + 0.3 * np.clip(px / half_width, -1.0, 1.0)
    colour = _rgb(palette.post) * (lit + 0.1 * grain)
    return colour.astype(np.float32), coverage
