"""Picture-quality measures for rendered frames (issue 8): sharp, rigid, honest motion.

Pure functions on RGB uint8 frames of shape (H, W, 3) (numpy + OpenCV, no I/O). Each one
answers one question about a clip, so tests and `benchmarks/bench_quality.py` can put a
number on what a viewer sees:

* `detail`, `detail_kept` — is the picture still as sharp as frame 0 (compounding blur)?
* `homography_correlation` — is the last frame still frame 0 seen from elsewhere, or has
  it smeared and melted? (a rigid, mostly planar scene seen after a camera move is
  explained by a homography; smears and melting are not)
* `band_texture_ratio`, `band_ratio_kept` — is the picture entering at an edge textured,
  or painted as straight streaks?
* `upright_straightness` — does a tall upright (a rocket, a pole) stay straight?
* `centre_found` — is the centre of frame 0 still (or again) somewhere in a frame?
* `centre_seam` — is there a fixed "+" seam at the optical centre?

Grey levels are OpenCV's RGB → grey (0–255, float). Coordinates are pixels, x to the
right, y down. Functions that cannot measure (too few features, nothing in common, a
flat region) return NaN rather than a number that would look like a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Edge = Literal["left", "right", "top", "bottom"]
EDGES: tuple[Edge, ...] = ("left", "right", "top", "bottom")

BAND_FRACTION = 1 / 8  # width of an edge band, as a fraction of the frame's side across it
SEAM_RADIUS = 8  # px around the optical centre where `centre_seam` looks for a seam
MIN_INLIERS = 12  # RANSAC inliers below which a homography says nothing
MIN_OVERLAP = 0.05  # fraction of the last frame both frames must show for a correlation


# --------------------------------------------------------------------------- helpers


def grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) float32 grey levels 0–255 of an (H, W, 3) RGB uint8 frame."""
    _check_frame(frame)
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


def central_half(array: np.ndarray) -> np.ndarray:
    """The middle half of an array's rows and columns (a quarter of its area)."""
    height, width = array.shape[:2]
    return array[height // 4 : height - height // 4, width // 4 : width - width // 4]


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError(f"expected an RGB uint8 array, got {getattr(frame, 'dtype', type(frame))}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
    if frame.shape[0] < 16 or frame.shape[1] < 16:
        raise ValueError(f"frame {frame.shape[1]}×{frame.shape[0]} is too small to measure")


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def normalised_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Zero-mean normalised cross-correlation of two same-shape arrays, in [-1, 1].

    Only pixels where `mask` is true count. NaN when either side is flat there.
    """
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    norm = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / norm if norm > 0 else math.nan


# --------------------------------------------------------------------------- 1. detail


def detail(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey frame over its central half (grey levels²).

    The Laplacian is taken on the whole frame (3×3 aperture) and then cropped, so the
    border of the crop sees real neighbours. Blur lowers it; noise and ringing raise it.
    """
    laplacian = cv2.Laplacian(grey(frame), cv2.CV_32F, ksize=1)
    return float(central_half(laplacian).astype(np.float64).var())


def detail_kept(first: np.ndarray, last: np.ndarray) -> float:
    """`detail(last) / detail(first)`: 1 is as sharp as frame 0, 0.3 lost 70 % of detail.

    NaN when frame 0 has no detail at all.
    """
    return _ratio(detail(last), detail(first))


# --------------------------------------------------------------------------- 2. homography


CORRELATION_BAND = (2.0, 8.0)  # px: the difference of Gaussians compared (see below)


@dataclass(frozen=True)
class HomographyFit:
    """How well a homography of frame 0 explains the last frame.

    `correlation` is the normalised cross-correlation of the last frame with frame 0
    warped by `homography` (last_from_first, 3×3), over the pixels both frames show
    (`overlap`: that area as a fraction of the frame), on the grey frames band-passed by
    a difference of Gaussians (σ 2 px − σ 8 px). `grey_correlation` is the same on the
    plain grey frames. NaN with `reason` when no trustworthy homography was found.

    Why band-passed: plain grey correlation is dominated by large areas of even colour
    (a red saucer, a brown table) that correlate however melted the frame is — a coffee
    cup visibly smeared into a sail by `orbit-right` still scores 0.63–0.77 — while the
    2–8 px band holds the shapes that smears and melting destroy (0.17 there) and that a
    rigid move keeps even through blur (a 30 px shift blurred by σ 2.5: 0.97).
    """

    correlation: float
    grey_correlation: float
    matches: int
    inliers: int
    overlap: float
    homography: np.ndarray | None
    reason: str = ""


def _failed(reason: str, matches: int = 0, inliers: int = 0, overlap: float = 0.0,
            homography: np.ndarray | None = None) -> HomographyFit:
    return HomographyFit(math.nan, math.nan, matches, inliers, overlap, homography, reason)


def _band_pass(image: np.ndarray) -> np.ndarray:
    fine, coarse = CORRELATION_BAND
    return cv2.GaussianBlur(image, (0, 0), fine) - cv2.GaussianBlur(image, (0, 0), coarse)


def _orb(shape: tuple[int, int]) -> cv2.ORB:
    """ORB with a low FAST threshold (blurred frames still yield corners) and, on small
    frames, smaller patches so that corners near the border count."""
    patch = 31 if min(shape) >= 300 else 15
    return cv2.ORB_create(nfeatures=5000, fastThreshold=5, edgeThreshold=patch, patchSize=patch)


def fit_homography(first: np.ndarray, last: np.ndarray) -> HomographyFit:
    """Fit last_from_first with ORB features (ratio-tested matches) and RANSAC (5 px),
    then correlate the last frame with the warped frame 0 over the part both show."""
    a, b = grey(first), grey(last)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {first.shape} and {last.shape}")
    orb = _orb(a.shape)
    points_a, descriptors_a = orb.detectAndCompute(a.astype(np.uint8), None)
    points_b, descriptors_b = orb.detectAndCompute(b.astype(np.uint8), None)
    if descriptors_a is None or descriptors_b is None or len(points_a) < 2 or len(points_b) < 2:
        return _failed("too few ORB features")
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(descriptors_a, descriptors_b, k=2)
    # Lowe's ratio test: keep a match only when clearly better than the runner-up
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.85 * p[1].distance]
    if len(good) < MIN_INLIERS:
        return _failed(f"{len(good)} matches", len(good))
    source = np.float32([points_a[m.queryIdx].pt for m in good])
    target = np.float32([points_b[m.trainIdx].pt for m in good])
    homography, inlier_mask = cv2.findHomography(source, target, cv2.RANSAC, 5.0)
    inliers = int(inlier_mask.sum()) if inlier_mask is not None else 0
    if homography is None or inliers < MIN_INLIERS:
        return _failed(f"{inliers} inliers", len(good), inliers)
    height, width = a.shape
    if not _plausible(homography, width, height):
        return _failed("degenerate fit", len(good), inliers, homography=homography)
    inside = cv2.warpPerspective(
        np.ones_like(a, dtype=np.uint8), homography, (width, height), flags=cv2.INTER_NEAREST
    )
    inside = cv2.erode(inside, np.ones((5, 5), np.uint8)) > 0  # no interpolated rim
    overlap = float(inside.mean())
    if overlap < MIN_OVERLAP:
        return _failed(f"overlap {overlap:.0%}", len(good), inliers, overlap, homography)

    def correlate(x: np.ndarray, y: np.ndarray) -> float:
        warped = cv2.warpPerspective(x, homography, (width, height), flags=cv2.INTER_LINEAR)
        return normalised_correlation(warped, y, inside)

    return HomographyFit(
        correlate(_band_pass(a), _band_pass(b)), correlate(a, b), len(good), inliers, overlap,
        homography,
    )


def _plausible(homography: np.ndarray, width: int, height: int) -> bool:
    """A camera move maps the frame to a convex, unflipped quadrilateral of sensible size
    (0.1–10× the area); RANSAC on a few chance matches can return a collapsed one."""
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]]).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, homography).reshape(-1, 2).astype(np.float64)
    edges = np.roll(quad, -1, axis=0) - quad
    following = np.roll(edges, -1, axis=0)
    turns = edges[:, 0] * following[:, 1] - edges[:, 1] * following[:, 0]  # all > 0: convex
    after = np.roll(quad, -1, axis=0)
    area = 0.5 * float(np.sum(quad[:, 0] * after[:, 1] - after[:, 0] * quad[:, 1]))
    return bool(np.all(turns > 0)) and 0.1 <= area / (width * height) <= 10.0


def homography_correlation(first: np.ndarray, last: np.ndarray) -> float:
    """Normalised cross-correlation (2–8 px band) of `last` with frame 0 warped by the
    best homography (ORB + RANSAC), over the part both frames show; NaN when no
    homography is found (`fit_homography` says why, and gives the plain grey figure).
    A rigid move keeps ≥ 0.9 even through blur; smears and melting fall below 0.3."""
    return fit_homography(first, last).correlation


# --------------------------------------------------------------------------- 3. band texture


def band(frame: np.ndarray, edge: Edge, fraction: float = BAND_FRACTION) -> np.ndarray:
    """The grey band of `fraction` of the frame along `edge`, turned so that the edge is
    on the left or right: (H, w) for left/right, (W, h) (transposed) for top/bottom."""
    if edge not in EDGES:
        raise ValueError(f"edge must be one of {', '.join(EDGES)}, got {edge!r}")
    image = grey(frame)
    if edge in ("top", "bottom"):
        image = image.T
    size = max(2, round(image.shape[1] * fraction))
    return image[:, :size] if edge in ("left", "top") else image[:, -size:]


def band_texture_ratio(frame: np.ndarray, edge: Edge) -> float:
    """Mean |∂/∂x| over mean |∂/∂y| in the band of 1/8 of the frame at `edge` (for top
    and bottom, transposed: mean |∂/∂y| over mean |∂/∂x|).

    Picture entering at a left or right edge painted by repeating the border pixel is
    constant along x, so the ratio falls towards 0; real texture keeps roughly its
    frame-0 value. NaN on a flat band.
    """
    strip = band(frame, edge)
    across = float(np.abs(np.diff(strip, axis=1)).mean())
    along = float(np.abs(np.diff(strip, axis=0)).mean())
    return _ratio(across, along)


def band_ratio_kept(first: np.ndarray, last: np.ndarray, edge: Edge) -> float:
    """`band_texture_ratio(last, edge) / band_texture_ratio(first, edge)` (issue: ≥ 0.5)."""
    return _ratio(band_texture_ratio(last, edge), band_texture_ratio(first, edge))


# --------------------------------------------------------------------------- 4. straightness


@dataclass(frozen=True)
class UprightTrack:
    """Where horizontal strips of an upright in frame 0 are found in the last frame.

    `centres` is (n, 2) of (x, y) strip centres in the last frame, NaN for strips lost
    on the way (correlation below the threshold); `deviation` is the largest distance in
    px, along x, of a found centre from the straight line x = a·y + b fitted to all.
    """

    centres: np.ndarray
    scores: np.ndarray
    deviation: float

    @property
    def found(self) -> int:
        return int(np.isfinite(self.centres[:, 0]).sum())


def track_upright(
    frames: Sequence[np.ndarray],
    column_hint: float,
    *,
    rows: tuple[int, int] | None = None,
    strips: int = 12,
    half_width: int | None = None,
    search: int | None = None,
    min_score: float = 0.3,
) -> UprightTrack:
    """Track `strips` horizontal strips of frame 0 centred on `column_hint` (the x of the
    upright's centre line) from frame to frame into the last frame.

    Each strip (height: its share of `rows`, default the middle 80 % of the frame; width
    2·`half_width`, default 1/16 of the frame height each side) is template-matched with
    frame 0's strip as template (TM_CCOEFF_NORMED) within ±`search` px (default 1/16 of
    the height; a third of it vertically) of where it was in the previous frame, at
    sub-pixel precision. Only x matters to the verdict: a strip that slides along a
    uniform body still finds the centre line, at another height. Pass
    frames densely enough (every frame, or every few) that no strip moves further than
    `search` between two of them.
    """
    if len(frames) < 1:
        raise ValueError("need at least one frame")
    first = grey(frames[0])
    height, width = first.shape
    top, bottom = rows if rows is not None else (round(height * 0.1), round(height * 0.9))
    if not 0 <= top < bottom <= height:
        raise ValueError(f"rows {top}..{bottom} outside a frame {height} px high")
    half_width = half_width or max(4, height // 16)
    search = search or max(4, height // 16)
    strip_height = max(4, (bottom - top) // strips)
    x0 = round(column_hint) - half_width
    if x0 < 0 or x0 + 2 * half_width > width:
        raise ValueError(f"column {column_hint:g} ± {half_width} leaves the frame")
    templates, positions = [], []
    for k in range((bottom - top) // strip_height):
        y0 = top + k * strip_height
        templates.append(first[y0 : y0 + strip_height, x0 : x0 + 2 * half_width])
        positions.append((float(x0), float(y0)))
    current = np.array(positions)  # top-left corner of each strip in the current frame
    scores = np.ones(len(templates))
    for frame in frames[1:]:
        image = grey(frame)
        for i, template in enumerate(templates):
            if not np.isfinite(current[i, 0]):
                continue
            found, score = _match_near(image, template, current[i], search)
            current[i] = found if score >= min_score else (math.nan, math.nan)
            scores[i] = score
    centres = current + np.array([half_width, strip_height / 2.0])
    return UprightTrack(centres, scores, _line_deviation(centres))


def upright_straightness(
    frames: Sequence[np.ndarray], column_hint: float, **options: object
) -> float:
    """Largest px distance of the upright's centre line in the last frame from a straight
    line (see `track_upright`; issue: ≤ 4 px over a 4 s orbit at 832×448). NaN when fewer
    than 3 strips survive the tracking."""
    return track_upright(frames, column_hint, **options).deviation  # type: ignore[arg-type]


def _match_near(
    image: np.ndarray, template: np.ndarray, corner: np.ndarray, search: int
) -> tuple[tuple[float, float], float]:
    """Best TM_CCOEFF_NORMED position of `template` within ±search px of `corner` along x
    and a third of that along y: an upright's body looks alike all along its height, so
    a strip given room slides along it."""
    th, tw = template.shape
    height, width = image.shape
    rise = max(2, search // 3)
    x0 = max(0, math.floor(corner[0]) - search)
    y0 = max(0, math.floor(corner[1]) - rise)
    x1 = min(width, math.ceil(corner[0]) + tw + search)
    y1 = min(height, math.ceil(corner[1]) + th + rise)
    if x1 - x0 < tw + 2 or y1 - y0 < th + 2:
        return (math.nan, math.nan), -1.0
    response = cv2.matchTemplate(image[y0:y1, x0:x1], template, cv2.TM_CCOEFF_NORMED)
    _, score, _, (bx, by) = cv2.minMaxLoc(response)
    rows, columns = response.shape
    dx = _parabola_peak(response[by, bx - 1 : bx + 2]) if 0 < bx < columns - 1 else 0.0
    dy = _parabola_peak(response[by - 1 : by + 2, bx]) if 0 < by < rows - 1 else 0.0
    return (x0 + bx + dx, y0 + by + dy), float(score)


def _parabola_peak(values: np.ndarray) -> float:
    """Sub-pixel offset in [-0.5, 0.5] of the peak of three samples around their middle."""
    left, middle, right = (float(v) for v in values)
    curvature = left - 2.0 * middle + right
    return float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5)) if curvature < 0 else 0.0


def _line_deviation(centres: np.ndarray) -> float:
    found = centres[np.isfinite(centres[:, 0])]
    if len(found) < 3:
        return math.nan
    slope, intercept = np.polyfit(found[:, 1], found[:, 0], 1)
    return float(np.max(np.abs(found[:, 0] - (slope * found[:, 1] + intercept))))


# --------------------------------------------------------------------------- 5. centre found


def centre_found(first: np.ndarray, frames: np.ndarray | Sequence[np.ndarray]) -> float:
    """Best normalised cross-correlation (TM_CCOEFF_NORMED, any translation) of frame 0's
    central half found in `frames` (one frame, or the best over several), in [-1, 1].

    A full turn that comes home finds it again (issue: ≥ 0.5); fog does not.
    """
    reference = grey(first)
    template = central_half(reference)
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = [frames]
    best = -1.0
    for frame in frames:
        image = grey(frame)
        if image.shape != reference.shape:
            raise ValueError(f"frames differ in shape: {first.shape} and {frame.shape}")
        response = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
        best = max(best, float(np.nan_to_num(response, nan=-1.0).max()))
    return best


# --------------------------------------------------------------------------- 6. centre seam


def centre_seam(frame: np.ndarray, radius: int = SEAM_RADIUS) -> float:
    """How much a "+" seam at the optical centre stands out (issue: ≤ 2).

    Row steps: the mean |grey(y+1) − grey(y)| over the middle half of the columns, for
    each y; column steps likewise along x over the middle half of the rows. The result is
    the larger of (the largest row step within `radius` px of the centre row) / (the
    median row step over the middle half of the rows), and the same for columns. A clean
    frame gives ~1–1.5; a line drawn through the centre gives several.
    """
    image = grey(frame).astype(np.float64)
    return max(_seam_ratio(image, radius), _seam_ratio(image.T, radius))


def _seam_ratio(image: np.ndarray, radius: int) -> float:
    height, width = image.shape
    columns = slice(width // 4, width - width // 4)
    steps = np.abs(np.diff(image[:, columns], axis=0)).mean(axis=1)  # step y → y + 1
    between = np.arange(height - 1) + 0.5  # where each step sits
    centre = (height - 1) / 2.0
    near = np.abs(between - centre) <= radius
    middle = steps[height // 4 : height - height // 4]
    return _ratio(float(steps[near].max()), float(np.median(middle)))
