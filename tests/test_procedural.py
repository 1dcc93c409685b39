"""The built-in landscape: deterministic, textured, with real depth structure."""

from __future__ import annotations

import numpy as np
import pytest

from kandanim.procedural import procedural_scene

SIZES = [(832, 448), (640, 640), (448, 832), (64, 64)]


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_shapes_and_types(width: int, height: int) -> None:
    image, inverse_depth = procedural_scene(width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous  # OpenCV takes fast paths only on packed pixels
    assert inverse_depth.shape == (height, width) and inverse_depth.dtype == np.float32
    assert np.all(np.isfinite(inverse_depth)) and inverse_depth.min() > 0


def test_deterministic_per_size_and_variant() -> None:
    first, first_depth = procedural_scene(128, 64, variant=3)
    second, second_depth = procedural_scene(128, 64, variant=3)
    assert np.array_equal(first, second)
    assert np.array_equal(first_depth, second_depth)


def test_variants_look_different() -> None:
    images = [procedural_scene(128, 128, variant=v)[0].astype(np.float32) for v in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(images[i] - images[j]).mean() > 15, (i, j)
    # palettes differ, not only layouts: mean colours are far apart
    means = np.array([image.reshape(-1, 3).mean(axis=0) for image in images])
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)
    assert distances[np.triu_indices(4, 1)].min() > 10


def test_large_variant_numbers_work() -> None:
    image, _ = procedural_scene(64, 64, variant=999_983)
    assert image.std() > 10


@pytest.mark.parametrize(("width", "height"), SIZES[:3])
def test_depth_structure(width: int, height: int) -> None:
    """Sky farthest at the top, ground nearest at the bottom, objects in between."""
    for variant in range(4):
        _, inverse_depth = procedural_scene(width, height, variant)
        assert inverse_depth[0].max() == inverse_depth.min()  # the top row is sky
        bottom = inverse_depth[-1]
        assert np.median(bottom) >= 0.99 * inverse_depth.max()  # ground nearest at the bottom
        # real layering: many distinct depths, each of several layers covering area
        sky = inverse_depth == inverse_depth.min()
        far = (inverse_depth > 1 / 120) & (inverse_depth < 1 / 15)  # mountains and hills
        assert 0.1 < sky.mean() < 0.5 and far.mean() > 0.05
        # columns are mostly monotone from the top down (near things lower in frame),
        # except where objects stand up in front of what is behind them
        rows_increasing = np.mean(np.diff(inverse_depth, axis=0) >= -1e-6)
        assert rows_increasing > 0.97


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_textured_everywhere(width: int, height: int) -> None:
    """Motion must be visible anywhere: almost no 8×8 block is flat."""
    for variant in range(4):
        image, _ = procedural_scene(width, height, variant)
        grey = image.astype(np.float32).mean(axis=2)
        h, w = (height // 8) * 8, (width // 8) * 8
        block_std = grey[:h, :w].reshape(h // 8, 8, w // 8, 8).std(axis=(1, 3))
        assert (block_std > 1.0).mean() > 0.9, variant


def test_same_landscape_at_other_aspect_ratios() -> None:
    """Scene coordinates: the square frame shows the middle of the landscape frame."""
    _, wide = procedural_scene(832, 448)
    _, square = procedural_scene(448, 448)
    left = (832 - 448) // 2
    agreement = np.mean(np.isclose(wide[:, left:left + 448], square, rtol=0.05))
    assert agreement > 0.9


def test_too_small_is_an_error() -> None:
    with pytest.raises(ValueError, match="8x8"):
        procedural_scene(4, 64)
