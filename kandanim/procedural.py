"""A built-in landscape with known depth: the first frame of the `preview` engine.

`procedural_scene(width, height, variant)` paints sky with clouds, far hazy mountains, mid
hills, a textured ground plane with a winding path and field rows, and trees, rocks and
fence posts standing on the ground. It returns the picture and its true inverse depth
(1 / distance in scene units, larger = nearer), so tests can check depth estimators and
the warp against ground truth.

How it is built (numpy + OpenCV, no randomness outside one seeded generator):

* Every feature lives in *scene coordinates*: `v` from 0 (top) to 1 (bottom) and
  `u = (x - W/2) / H`, so the same variant at another aspect ratio shows the same
  landscape, only cropped wider or narrower. Noise grids have fixed sizes and are sampled
  with `cv2.warpAffine`, which keeps the random draws independent of the frame size.
* Layers are composited with a soft z-test (nearer wins), so occlusion between hills,
  ground and objects follows from their depths rather than from drawing order.
* Atmospheric haze is applied per layer from its distance: far things fade to the
  horizon colour, as in a photograph (and as the heuristic depth expects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

_FOV_DEG = 40.0  # vertical field of view the ground plane is drawn for (SPEC §5 default)
_FOCAL = 0.5 / math.tan(math.radians(_FOV_DEG) / 2.0)  # in units of the frame height
_U_SPAN = 2.0  # noise grids cover u in [-2, 2]: aspect ratios up to 4:1
_SKY_INVERSE_DEPTH = 1.0 / 1000.0
_NEAREST_DISTANCE = 2.0  # the ground at the bottom row of the frame

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class _Palette:
    sky_top: Colour
    sky_horizon: Colour
    cloud_light: Colour
    cloud_dark: Colour
    mountains: Colour
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
    sun_height: float  # v of the sun's centre; > 1 hides it
    haze_distance: float  # distance (scene units) at which ~63 % of the colour is haze


_PALETTES: tuple[_Palette, ...] = (
    _Palette(  # summer day
        sky_top=(62, 118, 196), sky_horizon=(196, 220, 238),
        cloud_light=(252, 252, 250), cloud_dark=(176, 188, 206),
        mountains=(104, 128, 160), hills=(66, 112, 58),
        ground_near=(92, 146, 52), ground_far=(138, 170, 86), field_stripe=(168, 160, 70),
        path=(196, 172, 128), foliage=(38, 94, 40), trunk=(88, 60, 40),
        rock=(132, 128, 120), post=(110, 80, 56), sun=(255, 250, 228),
        sun_height=0.12, haze_distance=70.0,
    ),
    _Palette(  # sunset
        sky_top=(54, 46, 112), sky_horizon=(250, 168, 104),
        cloud_light=(250, 170, 150), cloud_dark=(120, 70, 110),
        mountains=(112, 84, 124), hills=(70, 64, 84),
        ground_near=(112, 84, 48), ground_far=(176, 120, 80), field_stripe=(150, 110, 44),
        path=(210, 150, 100), foliage=(48, 56, 36), trunk=(60, 40, 34),
        rock=(116, 94, 92), post=(70, 48, 40), sun=(255, 222, 150),
        sun_height=0.36, haze_distance=45.0,
    ),
    _Palette(  # misty autumn morning
        sky_top=(140, 162, 186), sky_horizon=(226, 224, 214),
        cloud_light=(246, 244, 238), cloud_dark=(186, 190, 196),
        mountains=(150, 160, 168), hills=(96, 112, 96),
        ground_near=(150, 104, 42), ground_far=(182, 150, 96), field_stripe=(124, 110, 50),
        path=(180, 160, 130), foliage=(184, 92, 34), trunk=(76, 56, 44),
        rock=(120, 118, 112), post=(96, 76, 60), sun=(250, 246, 230),
        sun_height=1.5, haze_distance=28.0,
    ),
    _Palette(  # winter dusk
        sky_top=(28, 40, 86), sky_horizon=(132, 128, 176),
        cloud_light=(170, 164, 200), cloud_dark=(66, 70, 112),
        mountains=(150, 160, 196), hills=(70, 84, 110),
        ground_near=(206, 214, 232), ground_far=(168, 172, 206), field_stripe=(150, 160, 196),
        path=(128, 118, 124), foliage=(26, 58, 52), trunk=(48, 38, 36),
        rock=(92, 96, 112), post=(64, 52, 50), sun=(255, 240, 220),
        sun_height=1.5, haze_distance=55.0,
    ),
)


def procedural_scene(width: int, height: int, variant: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A landscape and its true inverse depth.

    Returns `(image, inverse_depth)`: RGB uint8 (H, W, 3) and float32 (H, W), larger =
    nearer (1 / distance in scene units; the sky is 1/1000). Deterministic per
    (width, height, variant); variants differ in palette (time of day) and layout.
    """
    if width < 8 or height < 8:
        raise ValueError(f"procedural_scene needs at least 8x8 pixels, got {width}x{height}")
    palette = _PALETTES[variant % len(_PALETTES)]
    rng = np.random.default_rng([0x6B616E64, variant])  # 'kand' + variant: fixed per variant
    grid = _Grid(width, height)
    horizon = 0.44 + 0.06 * (rng.random() - 0.5)

    canvas, depth = _sky(grid, rng, palette, horizon)
    _composite(canvas, depth, *_mountains(grid, rng, palette, horizon))
    _composite(canvas, depth, *_hills(grid, rng, palette, horizon))
    _composite(canvas, depth, *_ground(grid, rng, palette, horizon))
    _draw_objects(canvas, depth, grid, rng, palette, horizon)
    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    return image, depth


# ----------------------------------------------------------------------------- coordinates


class _Grid:
    """Pixel ↔ scene coordinates for one frame size."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        # pixel centres in scene coordinates
        self.u = ((np.arange(width, dtype=np.float32) + 0.5) - width / 2.0) / height
        self.v = (np.arange(height, dtype=np.float32) + 0.5) / height
        self.pixel = 1.0 / height  # one pixel in scene units

    def noise(self, rng: np.random.Generator, freq: float, octaves: int = 1,
              stretch: float = 1.0, gain: float = 0.5) -> np.ndarray:
        """Fractal value noise over the frame, roughly zero-mean with unit spread.

        `freq` is grid cells per unit of frame height; `stretch` > 1 makes features wider
        than tall (clouds, strata). Grid sizes do not depend on the frame size.
        """
        total = np.zeros((self.height, self.width), np.float32)
        amplitude = 1.0
        for octave in range(octaves):
            fy = freq * 2**octave
            fx = fy / stretch
            cells_y, cells_x = int(math.ceil(fy)) + 4, int(math.ceil(fx * 2 * _U_SPAN)) + 4
            cells = rng.random((cells_y, cells_x), dtype=np.float32) - 0.5
            # dst pixel (x, y) samples grid point (gx, gy): u, v scaled into cells
            scale_x, scale_y = fx / self.height, fy / self.height
            offset_x = (_U_SPAN - self.width / (2.0 * self.height)) * fx + 1.0
            matrix = np.array([[scale_x, 0, offset_x + 0.5 * scale_x],
                               [0, scale_y, 1.0 + 0.5 * scale_y]], np.float32)
            sampled = cv2.warpAffine(cells, matrix, (self.width, self.height),
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT)
            total += amplitude * sampled
            amplitude *= gain
        return total * (3.0 / max(1e-6, _amplitude_sum(octaves, gain)))

    def ridge(self, rng: np.random.Generator, freq: float, octaves: int) -> np.ndarray:
        """1-D fractal noise along u (a skyline), shape (W,), roughly in [-1, 1]."""
        total = np.zeros(self.width, np.float32)
        amplitude = 1.0
        for octave in range(octaves):
            f = freq * 2**octave
            count = int(math.ceil(f * 2 * _U_SPAN)) + 2
            knots = rng.random(count).astype(np.float32) * 2 - 1
            positions = (self.u + _U_SPAN) * f
            total += amplitude * _smooth_interp(positions, knots)
            amplitude *= 0.5
        return total / _amplitude_sum(octaves, 0.5)


def _amplitude_sum(octaves: int, gain: float) -> float:
    return float(sum(gain**o for o in range(octaves)))


def _smooth_interp(positions: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Cosine-eased interpolation of `knots` at fractional `positions` (smooth skylines)."""
    index = np.clip(np.floor(positions).astype(np.int64), 0, len(knots) - 2)
    frac = np.clip(positions - index, 0.0, 1.0)
    ease = frac * frac * (3 - 2 * frac)
    return knots[index] * (1 - ease) + knots[index + 1] * ease


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _rgb(colour: Colour) -> np.ndarray:
    return np.asarray(colour, np.float32)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per-pixel blend a → b by t (t has no channel axis)."""
    return a + (b - a) * t[..., None]


def _ground_inverse_depth(v: np.ndarray, horizon: float) -> np.ndarray:
    """Inverse distance of a flat ground seen from a level camera: linear in rows."""
    return np.maximum(v - horizon, 0.0) / ((1.0 - horizon) * _NEAREST_DISTANCE)


def _haze(colour: np.ndarray, inverse_depth: np.ndarray, palette: _Palette) -> np.ndarray:
    """Atmospheric perspective: blend toward the horizon colour with distance."""
    distance = 1.0 / np.maximum(inverse_depth, 1e-6)
    transmission = np.exp(-distance / palette.haze_distance).astype(np.float32)
    return _mix(_rgb(palette.sky_horizon), colour, transmission)


def _composite(canvas: np.ndarray, depth: np.ndarray, colour: np.ndarray,
               layer_depth: np.ndarray, coverage: np.ndarray) -> None:
    """Draw a layer where it covers and is nearer than what is there (soft z-test)."""
    # the z-test is softened over about one row of ground depth to anti-alias the seams
    nearer = np.clip((layer_depth - depth) * 400.0 + 0.5, 0.0, 1.0)
    alpha = coverage * nearer
    canvas += (colour - canvas) * alpha[..., None]
    np.copyto(depth, layer_depth, where=alpha > 0.5)


# ----------------------------------------------------------------------------- layers


def _sky(grid: _Grid, rng: np.random.Generator, palette: _Palette,
         horizon: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.broadcast_to(grid.v[:, None], (grid.height, grid.width))
    height_above = np.clip((horizon - v) / horizon, 0.0, 1.0)
    sky = _mix(_rgb(palette.sky_horizon), _rgb(palette.sky_top), np.sqrt(height_above))

    sun_u = 0.25 * (rng.random() - 0.5)
    sun_d = np.hypot(grid.u[None, :] - sun_u, v - palette.sun_height)
    glow = (np.exp(-sun_d / 0.12) * 0.55 + _smoothstep(0.035, 0.028, sun_d)).astype(np.float32)
    sky = _mix(sky, _rgb(palette.sun), np.clip(glow, 0.0, 1.0))

    wisps = grid.noise(rng, 10.0, octaves=3, stretch=4.0)  # faint cirrus: no flat sky
    sky += (wisps * 5.0)[..., None]

    density = grid.noise(rng, 3.0, octaves=5, stretch=2.5)
    shade = grid.noise(rng, 6.0, octaves=2, stretch=2.0)
    cover = _smoothstep(0.1, 1.3, density) * _smoothstep(0.0, 0.35, height_above)
    cloud = _mix(_rgb(palette.cloud_dark), _rgb(palette.cloud_light),
                 np.clip(0.6 + 0.25 * shade + 0.2 * density, 0.0, 1.0))
    sky = _mix(sky, cloud, cover * 0.9)
    depth = np.full((grid.height, grid.width), _SKY_INVERSE_DEPTH, np.float32)
    return sky.astype(np.float32), depth


def _mountains(grid: _Grid, rng: np.random.Generator, palette: _Palette,
               horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distant ridges (60–90 units): strong haze, craggy texture, pale peaks."""
    ridge = horizon - 0.09 - 0.08 * grid.ridge(rng, 1.6, 5)
    v = grid.v[:, None]
    coverage = np.clip((v - ridge[None, :]) / grid.pixel + 0.5, 0.0, 1.0)
    distance = 70.0 + 20.0 * grid.ridge(rng, 0.7, 2)
    below_ridge = np.clip((v - ridge[None, :]) / 0.12, 0.0, 1.0)
    inverse_depth = (1.0 / distance)[None, :] * (1.0 + 0.25 * below_ridge)

    texture = grid.noise(rng, 14.0, octaves=4, stretch=0.6)
    light = 0.85 + 0.12 * texture + 0.25 * (1.0 - below_ridge)
    colour = _rgb(palette.mountains) * light[..., None]
    colour = _haze(colour, inverse_depth, palette)
    return colour, inverse_depth.astype(np.float32), coverage.astype(np.float32)


def _hills(grid: _Grid, rng: np.random.Generator, palette: _Palette,
           horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling wooded hills (18–30 units) whose feet meet the ground plane."""
    ridge = horizon - 0.025 - 0.05 * (grid.ridge(rng, 2.2, 4) * 0.5 + 0.5)
    v = grid.v[:, None]
    coverage = np.clip((v - ridge[None, :]) / grid.pixel + 0.5, 0.0, 1.0)
    distance = 24.0 + 6.0 * grid.ridge(rng, 1.0, 2)
    slope = np.clip((v - ridge[None, :]) / 0.06, 0.0, 1.0)
    inverse_depth = (1.0 / distance)[None, :] * (1.0 + 0.35 * slope)

    canopy = grid.noise(rng, 45.0, octaves=3)  # tree crowns seen from afar
    patches = grid.noise(rng, 8.0, octaves=2)
    light = 0.8 + 0.14 * canopy + 0.08 * patches + 0.15 * (1 - slope)
    colour = _rgb(palette.hills) * light[..., None]
    colour = _haze(colour, inverse_depth, palette)
    return colour, inverse_depth.astype(np.float32), coverage.astype(np.float32)


def _ground(grid: _Grid, rng: np.random.Generator, palette: _Palette,
            horizon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ground plane, textured in its own coordinates so texture shrinks with distance."""
    v = np.broadcast_to(grid.v[:, None], (grid.height, grid.width))
    inverse_depth = _ground_inverse_depth(v, horizon)
    coverage = (v > horizon + grid.pixel).astype(np.float32)
    distance = 1.0 / np.maximum(inverse_depth, 1e-3)
    lateral = grid.u[None, :] / _FOCAL * distance  # X on the ground, scene units

    path_centre = 1.2 * np.sin(distance * 0.18 + rng.random() * 6.28) + 0.6 * (rng.random() - 0.5)
    path = _smoothstep(0.75, 0.55, np.abs(lateral - path_centre))

    rows = 0.5 + 0.5 * np.sin(lateral * 2.4 + 0.3 * distance)  # crop rows converge in depth
    fields = _smoothstep(0.2, 0.6, _ground_noise(lateral, distance, rng, 0.08))
    near_detail = np.clip(inverse_depth * 4.0, 0.0, 1.0)  # fade fine texture with distance
    grass = _ground_noise(lateral, distance, rng, 2.5) * near_detail
    clumps = _ground_noise(lateral, distance, rng, 0.7)

    base = _mix(_rgb(palette.ground_far), _rgb(palette.ground_near),
                np.clip(inverse_depth * 3.0, 0.0, 1.0))
    striped = _mix(base, _rgb(palette.field_stripe), fields * rows * 0.55)
    light = 0.88 + 0.12 * clumps + 0.14 * grass
    colour = striped * light[..., None]
    colour = _mix(colour, _rgb(palette.path) * (0.9 + 0.1 * grass)[..., None], path * 0.9)
    colour = _haze(colour, inverse_depth, palette)
    return colour, inverse_depth.astype(np.float32), coverage


def _ground_noise(lateral: np.ndarray, distance: np.ndarray, rng: np.random.Generator,
                  freq: float) -> np.ndarray:
    """Value noise sampled at ground-plane coordinates (X, Z), roughly in [-1, 1]."""
    size = 128
    cells = rng.random((size, size), dtype=np.float32) * 2 - 1
    map_x = (lateral * freq + size / 2).astype(np.float32)
    map_z = (distance * freq).astype(np.float32)
    return cv2.remap(cells, map_x, map_z, cv2.INTER_CUBIC, borderMode=cv2.BORDER_WRAP)


# ----------------------------------------------------------------------------- objects


def _draw_objects(canvas: np.ndarray, depth: np.ndarray, grid: _Grid,
                  rng: np.random.Generator, palette: _Palette, horizon: float) -> None:
    """Trees, rocks and a fence on the ground, drawn far to near inside their boxes."""
    aspect_span = 1.6  # place objects over u in [-0.8, 0.8] whatever the frame shows
    objects: list[tuple[float, str, float]] = []  # (distance, kind, u)
    for kind, count, near, far in (("tree", 7, 3.5, 16.0), ("rock", 5, 2.6, 10.0)):
        for _ in range(count):
            distance = near * (far / near) ** rng.random()
            objects.append((distance, kind, (rng.random() - 0.5) * aspect_span))
    fence_distance = 4.5 + 2.0 * rng.random()
    fence_start = -0.8 + 0.3 * rng.random()
    for post in range(9):
        objects.append((fence_distance + 0.35 * post, "post", fence_start + 0.09 * post))

    for distance, kind, u in sorted(objects, reverse=True):
        seed = rng.integers(1 << 31)
        _draw_object(canvas, depth, grid, palette, horizon, kind, u, distance, seed)


def _draw_object(canvas: np.ndarray, depth: np.ndarray, grid: _Grid, palette: _Palette,
                 horizon: float, kind: str, u: float, distance: float, seed: int) -> None:
    base_v = horizon + (1.0 - horizon) * _NEAREST_DISTANCE / distance
    scale = _FOCAL / distance  # scene units → frame heights at this distance
    size = {"tree": 3.2, "rock": 0.7, "post": 1.1}[kind] * scale
    width = {"tree": 0.55, "rock": 1.5, "post": 0.09}[kind] * size
    top = base_v - size
    x0 = int(math.floor((u - width) * grid.height + grid.width / 2.0))
    x1 = int(math.ceil((u + width) * grid.height + grid.width / 2.0)) + 1
    y0 = int(math.floor(top * grid.height)) - 1
    y1 = int(math.ceil((base_v + 0.15 * size) * grid.height)) + 1
    x0c, x1c = max(x0, 0), min(x1, grid.width)
    y0c, y1c = max(y0, 0), min(y1, grid.height)
    if x0c >= x1c or y0c >= y1c:
        return
    # local coordinates: (px, py) in object heights, origin at the base centre, y up
    px = (grid.u[x0c:x1c][None, :] - u) / size
    py = (base_v - grid.v[y0c:y1c][:, None]) / size
    local_rng = np.random.default_rng(seed)
    painter = {"tree": _tree, "rock": _rock, "post": _post}[kind]
    colour, coverage = painter(px, py, local_rng, palette, size * grid.height)
    inverse_depth = np.full(coverage.shape, 1.0 / distance, np.float32)
    colour = _haze(colour, inverse_depth, palette)
    _composite(canvas[y0c:y1c, x0c:x1c], depth[y0c:y1c, x0c:x1c], colour, inverse_depth,
               coverage)


def _blob_noise(px: np.ndarray, py: np.ndarray, rng: np.random.Generator,
                freq: float) -> np.ndarray:
    """Cheap smooth noise in object coordinates (sum of random sinusoids)."""
    total = np.zeros(np.broadcast_shapes(px.shape, py.shape), np.float32)
    for _ in range(4):
        angle, phase = rng.random() * math.pi, rng.random() * 6.28
        f = freq * (0.7 + 0.6 * rng.random())
        total += np.sin((px * math.cos(angle) + py * math.sin(angle)) * f + phase)
    return total * 0.5


def _tree(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    edge = 1.0 / max(pixels, 1.0)  # one pixel in object units: anti-aliased outlines
    trunk = np.clip((0.05 - np.abs(px)) / edge + 0.5, 0, 1) * (py < 0.45) * (py > -0.02)
    cy, ry, rx = 0.62, 0.36, 0.3
    lumps = _blob_noise(px, py, rng, 22.0) * 0.07
    radial = np.sqrt((px / rx) ** 2 + ((py - cy) / ry) ** 2)
    crown = np.clip((1.0 + lumps - radial) / (edge / rx) + 0.5, 0.0, 1.0)
    leaves = _blob_noise(px, py, rng, 70.0)
    sunlit = np.clip(0.5 - 0.9 * (py - cy) + 0.6 * px, 0.0, 1.0)  # light from upper right
    shade = 0.55 + 0.35 * sunlit + 0.12 * leaves
    foliage = _rgb(palette.foliage) * shade[..., None]
    bark = _rgb(palette.trunk) * (0.85 + 0.1 * _blob_noise(px, py, rng, 90.0))[..., None]
    colour = _mix(bark, foliage, crown)
    coverage = np.maximum(trunk, crown)
    return colour.astype(np.float32), coverage.astype(np.float32)


def _rock(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    edge = 1.0 / max(pixels, 1.0)
    rx, ry = 0.8 + 0.4 * rng.random(), 0.55 + 0.2 * rng.random()
    lumps = _blob_noise(px, py, rng, 9.0) * 0.08
    radial = np.sqrt((px / rx) ** 2 + ((py - 0.1) / ry) ** 2)
    coverage = np.clip((1.0 + lumps - radial) / (edge / ry) + 0.5, 0.0, 1.0) * (py > -0.08)
    grain = _blob_noise(px, py, rng, 60.0)
    lit = np.clip(0.55 + 0.5 * (py - 0.1) / ry + 0.3 * px / rx, 0.0, 1.0)
    colour = _rgb(palette.rock) * (0.6 + 0.45 * lit + 0.1 * grain)[..., None]
    return colour.astype(np.float32), coverage.astype(np.float32)


def _post(px: np.ndarray, py: np.ndarray, rng: np.random.Generator, palette: _Palette,
          pixels: float) -> tuple[np.ndarray, np.ndarray]:
    edge = 1.0 / max(pixels, 1.0)
    half_width = 0.045
    coverage = np.clip((half_width - np.abs(px)) / edge + 0.5, 0, 1)
    coverage = coverage * np.clip((1.0 - py) / edge + 0.5, 0, 1) * (py > -0.03)
    grain = _blob_noise(px * 0.3, py, rng, 40.0)
    lit = 0.75 + 0.35 * np.clip(px / half_width, -1, 1)
    colour = _rgb(palette.post) * (lit + 0.08 * grain)[..., None]
    return colour.astype(np.float32), coverage.astype(np.float32)
