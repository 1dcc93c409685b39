"""The forward warp against independent oracles (SPEC §5 step 2).

* OpenCV's `warpPerspective` with the exact homography of a plane (flat depth) or of a
  pure rotation (any depth) — on landscape, square and portrait frames;
* a two-plane scene (a near square before a far wall) whose disocclusion strip and
  occlusion are known in closed form;
* the best-matching bilinear translation for sub-pixel motion; plus identity, dropped points, determinism
  and input checks.

Frames are small (≤ 128 px) with square pixels and the principal point at the centre of
the pixel grid, as `camera.intrinsics` builds them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kandanim import warp
from kandanim.camera import intrinsics, rotation_from_angles
from kandanim.warp import WarpResult, forward_warp, warp_depth, warp_map

SIZES = [(128, 64), (64, 64), (64, 128)]  # (width, height): landscape, square, portrait
FOV = 50.0
PSNR_BAR = 35.0


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture: detail at every scale down to a few pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (height // 4 + 2, width // 4 + 2, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width + 8, height + 8), interpolation=cv2.INTER_CUBIC)
    image = cv2.GaussianBlur(image, (0, 0), 1.0)[4:-4, 4:-4]
    return np.clip(image, 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    error = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    return 10.0 * np.log10(255.0**2 / max(float(np.mean(error**2)), 1e-12))


def inside_after(homography: np.ndarray, width: int, height: int, margin: float) -> np.ndarray:
    """Target pixels whose source under the homography lies `margin` px inside the frame."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    target = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    source = np.linalg.inv(homography) @ target
    u, v = source[0] / source[2], source[1] / source[2]
    inside = (u >= margin) & (u <= width - 1 - margin) & (v >= margin) & (v <= height - 1 - margin)
    return inside.reshape(height, width)


def compare_with_homography(
    image: np.ndarray, result: WarpResult, homography: np.ndarray
) -> tuple[float, np.ndarray]:
    height, width = image.shape[:2]
    expected = cv2.warpPerspective(image, homography, (width, height), flags=cv2.INTER_LINEAR)
    away_from_holes = cv2.erode((~result.holes).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mask = away_from_holes & inside_after(homography, width, height, margin=1.0)
    return psnr(result.image, expected, mask), mask


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_flat_depth_matches_the_plane_homography(width: int, height: int) -> None:
    """A fronto-parallel plane at distance d moves by H = K·(R + t·nᵀ/d)·K⁻¹, n = (0, 0, 1):
    for p on the plane nᵀp = d, so R·p + t = (R + t·nᵀ/d)·p."""
    image = textured(width, height)
    distance = 4.0
    depth = np.full((height, width), distance, dtype=np.float32)
    k = intrinsics(width, height, FOV)
    rotation = rotation_from_angles(1.5, -1.0, 2.0)
    translation = np.array([0.12, -0.08, -0.2])
    homography = k @ (rotation + np.outer(translation, [0.0, 0.0, 1.0]) / distance) @ np.linalg.inv(k)

    result = forward_warp(image, depth, k, rotation, translation)

    score, mask = compare_with_homography(image, result, homography)
    assert mask.mean() > 0.6  # the comparison covers most of the frame
    assert score >= PSNR_BAR


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_pure_rotation_matches_its_homography_whatever_the_depth(width: int, height: int) -> None:
    image = textured(width, height, seed=1)
    rng = np.random.default_rng(2)
    depth = rng.uniform(1.0, 10.0, (height, width)).astype(np.float32)  # rough, unrelated
    k = intrinsics(width, height, FOV)
    rotation = rotation_from_angles(-3.0, 2.0, 4.0)

    result = forward_warp(image, depth, k, rotation, np.zeros(3))

    score, mask = compare_with_homography(image, result, k @ rotation @ np.linalg.inv(k))
    assert mask.mean() > 0.6
    assert score >= PSNR_BAR


def test_identity_move_returns_the_frame_unchanged() -> None:
    image = textured(64, 64)
    depth = np.random.default_rng(0).uniform(1.0, 10.0, (64, 64)).astype(np.float32)
    result = forward_warp(image, depth, intrinsics(64, 64, FOV), np.eye(3), np.zeros(3))
    assert np.array_equal(result.image, image)
    assert result.image is not image
    assert not result.holes.any()


def test_near_zero_move_changes_nothing_and_leaves_no_holes() -> None:
    """Through the full path (not the identity shortcut): a 1e-6 px move is invisible."""
    image = textured(64, 64)
    depth = np.random.default_rng(0).uniform(1.0, 10.0, (64, 64)).astype(np.float32)
    k = intrinsics(64, 64, FOV)
    result = forward_warp(image, depth, k, np.eye(3), np.array([1e-8, 0.0, 0.0]))
    assert np.array_equal(result.image, image)
    assert not result.holes.any()


# --------------------------------------------------------------------- two planes


TWO_PLANES = {"size": 96, "wall": 8.0, "square": 2.0, "box": (32, 64, 30, 62)}


def two_plane_scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured wall at distance 8 with a plain red square at distance 2 in front."""
    size = TWO_PLANES["size"]
    image = textured(size, size, seed=3)
    image[..., 0] //= 2  # the wall has little red, so the square stands out
    depth = np.full((size, size), TWO_PLANES["wall"], dtype=np.float32)
    top, bottom, left, right = TWO_PLANES["box"]
    image[top:bottom, left:right] = (250, 20, 20)
    depth[top:bottom, left:right] = TWO_PLANES["square"]
    return image, depth


def shift_for(distance: float, tx: float, k: np.ndarray) -> float:
    """Pixel shift of a point at `distance` under the camera-frame translation (tx, 0, 0)."""
    return k[0, 0] * tx / distance


def test_sideways_move_reveals_exactly_the_strip_beside_the_near_square() -> None:
    image, depth = two_plane_scene()
    size = TWO_PLANES["size"]
    k = intrinsics(size, size, FOV)
    wall_shift = 4.0
    tx = wall_shift * TWO_PLANES["wall"] / k[0, 0]  # points move right: p_cur = p + t
    square_shift = shift_for(TWO_PLANES["square"], tx, k)
    assert square_shift == pytest.approx(16.0)

    result = forward_warp(image, depth, k, np.eye(3), np.array([tx, 0.0, 0.0]))

    top, bottom, left, right = TWO_PLANES["box"]
    expected = np.zeros((size, size), dtype=bool)
    expected[:, : int(wall_shift)] = True  # new border on the left: the wall moved right
    # wall formerly behind the square, now left of it: [left + 4, left + 16)
    expected[top:bottom, left + int(wall_shift) : left + int(square_shift)] = True
    near = cv2.dilate(expected.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    core = cv2.erode(expected.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (result.holes & ~near).any(), "holes beyond two pixels of the revealed strip"
    assert not (core & ~result.holes).any(), "part of the revealed strip is not a hole"

    # The near square occludes the wall at its new place (the z-buffer), sharp and whole.
    moved = result.image[top + 1 : bottom - 1, left + 17 : right + 15]
    assert (moved[..., 0] >= 240).all() and (moved[..., 1] <= 30).all()
    # Nothing red is left where the square was and no hole is: the wall shows there.
    uncovered = result.image[top + 1 : bottom - 1, right + 17 :]
    assert (uncovered[..., 0] < 200).all()


def test_a_slow_parallax_tears_the_depth_edge_into_a_hole() -> None:
    """The square moves 1 px against the wall's 0.25 px: the one-pixel gap at its
    trailing edge is a disocclusion, not a stretch — it and the torn pixels on either
    side are holes instead of being interpolated across the depth edge. The leading
    edge only occludes: no holes there."""
    image, depth = two_plane_scene()
    size = TWO_PLANES["size"]
    k = intrinsics(size, size, FOV)
    tx = 0.25 * TWO_PLANES["wall"] / k[0, 0]
    assert shift_for(TWO_PLANES["square"], tx, k) == pytest.approx(1.0)

    result = forward_warp(image, depth, k, np.eye(3), np.array([tx, 0.0, 0.0]))

    top, bottom, left, right = TWO_PLANES["box"]
    rows = slice(top + 2, bottom - 2)
    assert result.holes[rows, left - 1 : left + 2].all()
    assert not result.holes[rows, left + 3 : right + 4].any()
    assert not result.holes[rows, right + 4 :].any()


def test_vertical_move_reveals_the_strip_above_the_near_square() -> None:
    """The same scene moved down: parity of the axes (rows behave like columns)."""
    image, depth = two_plane_scene()
    image, depth = np.ascontiguousarray(image.transpose(1, 0, 2)), np.ascontiguousarray(depth.T)
    size = TWO_PLANES["size"]
    k = intrinsics(size, size, FOV)
    ty = 4.0 * TWO_PLANES["wall"] / k[1, 1]

    result = forward_warp(image, depth, k, np.eye(3), np.array([0.0, ty, 0.0]))

    top, bottom, left, _ = TWO_PLANES["box"]  # transposed: rows ↔ columns
    expected = np.zeros((size, size), dtype=bool)
    expected[:4] = True
    expected[left + 4 : left + 16, top:bottom] = True
    near = cv2.dilate(expected.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    core = cv2.erode(expected.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert not (result.holes & ~near).any()
    assert not (core & ~result.holes).any()


def test_points_behind_the_camera_are_dropped() -> None:
    """Walking 1.5 units forward puts the near half (depth 1) behind the camera: none of
    it may appear (projected through the camera centre it would land mirrored)."""
    size = 64
    image = textured(size, size, seed=4)
    image[..., 0] //= 2
    depth = np.full((size, size), 6.0, dtype=np.float32)
    depth[:, : size // 2] = 1.0
    image[:, : size // 2] = (255, 0, 0)
    k = intrinsics(size, size, FOV)

    result = forward_warp(image, depth, k, np.eye(3), np.array([0.0, 0.0, -1.5]))

    visible = result.image[~result.holes]
    assert visible.size > 0
    assert (visible[:, 0] < 200).all(), "a point from behind the camera was drawn"
    assert result.holes[:, : size // 4].all()  # where the near half was, only holes
    far = warp_map(depth, k, np.eye(3), np.array([0.0, 0.0, -1.5]))
    assert far.moved_depth is not None
    assert far.moved_depth[:, : size // 2] == pytest.approx(-0.5)  # behind, as expected


# --------------------------------------------------------------------- sub-pixel


def best_translation(image: np.ndarray, moved: np.ndarray, axis: int) -> float:
    """The shift along `axis` (0: x, 1: y) whose bilinear translation of `image` best
    matches `moved`, to 0.01 px (an exhaustive search; phase correlation is biased
    towards whole pixels on such small, smooth frames)."""

    def grey(frame: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)[8:-8, 8:-8]

    height, width = image.shape[:2]
    errors = []
    for shift in np.arange(-0.5, 1.5001, 0.01):
        matrix = np.float32([[1, 0, shift if axis == 0 else 0], [0, 1, shift if axis else 0]])
        shifted = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR)
        errors.append((float(np.mean((grey(shifted) - grey(moved)) ** 2)), float(shift)))
    return min(errors)[1]


@pytest.mark.parametrize("axis", [0, 1])
def test_a_third_of_a_pixel_move_shifts_the_image_by_a_third_of_a_pixel(axis: int) -> None:
    size = 96
    image = textured(size, size, seed=5)
    depth = np.full((size, size), 5.0, dtype=np.float32)
    k = intrinsics(size, size, FOV)
    translation = np.zeros(3)
    translation[axis] = 0.3 * 5.0 / k[axis, axis]

    result = forward_warp(image, depth, k, np.eye(3), translation)

    assert best_translation(image, result.image, axis) == pytest.approx(0.3, abs=0.03)
    assert best_translation(image, result.image, 1 - axis) == pytest.approx(0.0, abs=0.03)
    assert not result.holes[8:-8, 8:-8].any()


def test_zoom_in_with_roll_leaves_no_holes() -> None:
    """A 3 % magnification with a roll misses whole rows and columns when splatting to
    nearest pixels: those gaps are filled, not reported as holes (no new border either)."""
    size = 128
    image = textured(size, size, seed=6)
    depth = np.full((size, size), 3.0, dtype=np.float32)
    k = intrinsics(size, size, FOV)
    result = forward_warp(image, depth, k, rotation_from_angles(0.0, 0.0, 2.0),
                          np.array([0.0, 0.0, -0.09]))
    assert not result.holes.any()
    homography = k @ (
        rotation_from_angles(0.0, 0.0, 2.0) + np.outer([0.0, 0.0, -0.09], [0, 0, 1]) / 3.0
    ) @ np.linalg.inv(k)
    score, _ = compare_with_homography(image, result, homography)
    assert score >= PSNR_BAR


# --------------------------------------------------------------------- contract


def test_output_is_deterministic_across_calls_and_sizes() -> None:
    image = textured(96, 64, seed=7)
    depth = np.random.default_rng(8).uniform(1.0, 10.0, (64, 96)).astype(np.float32)
    k = intrinsics(96, 64, FOV)
    move = (rotation_from_angles(2.0, 1.0, 3.0), np.array([0.05, 0.02, 0.1]))
    first = forward_warp(image, depth, k, *move)
    for width, height in SIZES:  # other sizes in between reuse and evict workspaces
        forward_warp(textured(width, height), np.full((height, width), 3.0, np.float32),
                     intrinsics(width, height, FOV), *move)
    second = forward_warp(image, depth, k, *move)
    assert first.holes.any()  # the case exercises holes, whose pixels must match too
    assert first.image.tobytes() == second.image.tobytes()
    assert np.array_equal(first.holes, second.holes)


def test_strips_give_the_same_result_as_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sources are projected and splatted in strips of rows; strip boundaries (here
    every 3 rows, in the middle of the depth edges) must not show."""
    image, depth = two_plane_scene()
    k = intrinsics(96, 96, FOV)
    move = (rotation_from_angles(1.0, 0.5, 2.0), np.array([0.08, 0.05, -0.1]))
    whole = forward_warp(image, depth, k, *move)

    def fresh_caches() -> None:
        warp._grids.cache_clear()
        warp._local.__dict__.clear()

    monkeypatch.setattr(warp, "_STRIP_PIXELS", 3 * 96)
    fresh_caches()
    try:
        assert warp._grids(96, 96).strip_rows == 3
        striped = forward_warp(image, depth, k, *move)
    finally:
        monkeypatch.undo()
        fresh_caches()
    assert whole.holes.any()
    assert striped.image.tobytes() == whole.image.tobytes()
    assert np.array_equal(striped.holes, whole.holes)


def test_result_types_and_shapes() -> None:
    image = textured(128, 64)
    depth = np.full((64, 128), 4.0)  # float64 is accepted
    result = forward_warp(image, depth, intrinsics(128, 64, FOV), np.eye(3), np.array([0.1, 0, 0]))
    assert result.image.shape == (64, 128, 3) and result.image.dtype == np.uint8
    assert result.holes.shape == (64, 128) and result.holes.dtype == np.bool_


def test_warped_depth_of_a_plane_moved_closer() -> None:
    depth = np.full((64, 64), 4.0, dtype=np.float32)
    k = intrinsics(64, 64, FOV)
    warped = warp_depth(depth, k, np.eye(3), np.array([0.0, 0.0, -1.0]))
    assert not warped.holes.any()  # moving closer magnifies: no border appears
    assert warped.depth == pytest.approx(3.0, abs=1e-4)


@pytest.mark.parametrize(
    ("image", "depth", "message"),
    [
        (np.zeros((8, 8), np.uint8), np.ones((8, 8), np.float32), r"\(8, 8\)"),
        (np.zeros((8, 8, 3), np.float32), np.ones((8, 8), np.float32), "uint8"),
        (np.zeros((8, 8, 3), np.uint8), np.ones((8, 9), np.float32), r"\(8, 9\)"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.float32), "positive"),
        (np.zeros((8, 8, 3), np.uint8), np.full((8, 8), np.nan, np.float32), "positive"),
        (np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), np.int32), "floating"),
    ],
)
def test_bad_inputs_are_rejected_with_the_offending_shape(image, depth, message) -> None:
    with pytest.raises(ValueError, match=message):
        forward_warp(image, depth, intrinsics(8, 8, FOV), np.eye(3), np.array([0.1, 0, 0]))


def test_bad_geometry_is_rejected() -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    depth = np.ones((8, 8), np.float32)
    k = intrinsics(8, 8, FOV)
    with pytest.raises(ValueError, match=r"rotation .*\(2, 2\)"):
        forward_warp(image, depth, k, np.eye(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"translation .*\(2,\)"):
        forward_warp(image, depth, k, np.eye(3), np.zeros(2))
    with pytest.raises(ValueError, match="edge_threshold"):
        forward_warp(image, depth, k, np.eye(3), np.zeros(3), edge_threshold=0.5)
