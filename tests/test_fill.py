"""Hole filling: known pixels untouched, holes filled with plausible colours."""

from __future__ import annotations

import numpy as np
import pytest

from kandanim.fill import ClassicalFiller, Filler
from kandanim.procedural import procedural_scene

FILLERS = {
    "pyramid": ClassicalFiller(),
    "pyramid-smooth": ClassicalFiller(texture=0.0),
    "telea": ClassicalFiller("telea"),
    "ns": ClassicalFiller("ns"),
}


def _masks(height: int, width: int) -> dict[str, np.ndarray]:
    """Hole shapes the warp produces: zoom-out border ring, side strip, parallax slivers."""
    rng = np.random.default_rng(0)
    ring = np.zeros((height, width), bool)
    ring[:5], ring[-5:], ring[:, :5], ring[:, -5:] = True, True, True, True
    strip = np.zeros((height, width), bool)
    strip[:, -9:] = True
    slivers = np.zeros((height, width), bool)
    for _ in range(12):
        y, x = rng.integers(0, height - 20), rng.integers(0, width - 4)
        slivers[y:y + rng.integers(3, 20), x:x + rng.integers(1, 4)] = True
    scattered = rng.random((height, width)) < 0.05
    blob = np.zeros((height, width), bool)
    blob[height // 3:height // 3 + 20, width // 4:width // 4 + 25] = True
    single = np.zeros((height, width), bool)
    single[height // 2, width // 2] = True
    corner = np.zeros((height, width), bool)
    corner[: height // 2, : width // 2] = True
    return {"ring": ring, "strip": strip, "slivers": slivers, "scattered": scattered,
            "blob": blob, "single": single, "corner": corner}


def test_fillers_follow_the_protocol() -> None:
    filler: Filler = ClassicalFiller()
    assert callable(filler.fill)


@pytest.mark.parametrize("name", FILLERS)
def test_pixels_outside_holes_are_unchanged(name: str) -> None:
    image, _ = procedural_scene(96, 64, 1)
    original = image.copy()
    for mask_name, holes in _masks(64, 96).items():
        result = FILLERS[name].fill(image, holes)
        assert result.shape == image.shape and result.dtype == np.uint8
        assert np.array_equal(result[~holes], image[~holes]), mask_name
        assert np.array_equal(image, original)  # the input is not modified


@pytest.mark.parametrize("name", FILLERS)
def test_a_hole_in_a_flat_region_takes_its_colour(name: str) -> None:
    image = np.empty((64, 64, 3), np.uint8)
    image[:] = (40, 150, 90)
    holes = np.zeros((64, 64), bool)
    holes[20:40, 24:44] = True
    image[holes] = (255, 0, 255)  # what the warp leaves there must not leak through
    result = FILLERS[name].fill(image, holes)
    assert np.abs(result[holes].astype(int) - (40, 150, 90)).max() <= 3


@pytest.mark.parametrize("name", FILLERS)
def test_holes_in_a_gradient_are_interpolated(name: str) -> None:
    ramp = np.linspace(0, 255, 96, dtype=np.float32)
    image = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[::-1], (64, 1)),
                      np.full((64, 96), 128.0, np.float32)], axis=-1).astype(np.uint8)
    truth = image.copy()
    masks = _masks(64, 96)
    for mask_name in ("slivers", "scattered", "blob", "single"):  # known all around
        holes = masks[mask_name]
        result = FILLERS[name].fill(image, holes)
        error = np.abs(result[holes].astype(int) - truth[holes]).mean()
        assert error < 6, (mask_name, error)


@pytest.mark.parametrize("name", ["pyramid", "telea"])
def test_fills_on_the_landscape_are_close_to_the_truth(name: str) -> None:
    image, _ = procedural_scene(160, 128, 0)
    # mean absolute error per channel level; the blob covers a tree's edge, which no
    # classical fill can restore, so it only has to beat leaving the hole black by far
    bounds = {"ring": 15, "slivers": 12, "scattered": 10, "blob": 50}
    for mask_name, bound in bounds.items():
        holes = _masks(128, 160)[mask_name]
        damaged = image.copy()
        damaged[holes] = 0
        result = FILLERS[name].fill(damaged, holes)
        error = np.abs(result[holes].astype(int) - image[holes]).mean()
        black = np.abs(damaged[holes].astype(int) - image[holes]).mean()
        assert error < bound and error < 0.45 * black, (mask_name, error)


def test_texture_adds_detail_to_wide_border_strips() -> None:
    """Mirrored detail: the filled strip is less flat than a purely smooth fill."""
    image, _ = procedural_scene(192, 128, 0)
    holes = np.zeros((128, 192), bool)
    holes[:, -16:] = True
    textured = ClassicalFiller(texture=1.0).fill(image, holes)[:, -16:].astype(np.float32)
    smooth = ClassicalFiller(texture=0.0).fill(image, holes)[:, -16:].astype(np.float32)

    def detail(patch: np.ndarray) -> float:  # mean absolute vertical difference
        return float(np.abs(np.diff(patch, axis=0)).mean())

    assert detail(textured) > 1.5 * detail(smooth)
    known = image[:, -48:-16].astype(np.float32)
    assert detail(textured) < 1.5 * detail(known)  # texture, not noise


def test_no_holes_all_holes_and_determinism() -> None:
    image, _ = procedural_scene(64, 64, 2)
    filler = ClassicalFiller()
    nothing = np.zeros((64, 64), bool)
    untouched = filler.fill(image, nothing)
    assert np.array_equal(untouched, image) and untouched is not image
    everything = np.ones((64, 64), bool)
    assert np.all(filler.fill(image, everything) == 128)
    holes = _masks(64, 64)["slivers"] | _masks(64, 64)["ring"]
    assert np.array_equal(filler.fill(image, holes), filler.fill(image, holes))


def test_odd_sizes_and_tiny_frames() -> None:
    rng = np.random.default_rng(3)
    for height, width in ((1, 1), (3, 5), (17, 31), (65, 63)):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        holes = rng.random((height, width)) < 0.3
        holes.flat[0] = False  # at least one known pixel
        result = ClassicalFiller().fill(image, holes)
        assert np.array_equal(result[~holes], image[~holes])


def test_bad_inputs_are_rejected() -> None:
    filler = ClassicalFiller()
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="bool"):
        filler.fill(image, np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="bool"):
        filler.fill(image, np.zeros((8, 9), bool))
    with pytest.raises(ValueError, match="RGB uint8"):
        filler.fill(np.zeros((8, 8), np.uint8), np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="unknown fill method"):
        ClassicalFiller("magic")  # type: ignore[arg-type]


def test_neighbour_sums_agree_between_gather_and_box_filter() -> None:
    """The two ways of summing known neighbours (few holes / many holes) agree exactly."""
    from kandanim import fill

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for share in (0.01, 0.2, 0.7):
        holes = rng.random((37, 53)) < share
        premultiplied = image * (~holes)[..., None]
        flat = np.flatnonzero(holes)
        gathered = fill._neighbour_sums_gathered(premultiplied, holes.view(np.uint8), flat)
        filtered = fill._neighbour_sums_filtered(premultiplied, holes.view(np.uint8), flat)
        assert np.array_equal(gathered[0], filtered[0])
        assert np.array_equal(gathered[1], filtered[1])
