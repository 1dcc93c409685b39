"""The colour palette behind colour coherence: composition changes are not colour drift."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kandanim.coherence import ColourReference
from kandanim.palette import Palette
from kandanim.procedural import procedural_scene


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return procedural_scene(192, 128, 0)[0]


def _zoomed_in(image: np.ndarray) -> np.ndarray:
    """The lower middle of the frame blown up to full size: what a zoom-in toward the
    ground shows — the same colours, with far less sky."""
    height, width = image.shape[:2]
    crop = image[height // 2 :, width // 4 : width - width // 4]
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)


def _tinted(image: np.ndarray) -> np.ndarray:
    """A diffusion-style drift: bluer, a little darker, more saturated."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    lab[..., 0] *= 0.95
    lab[..., 1:] = (lab[..., 1:] - 128.0) * 1.15 + 128.0
    lab[..., 2] -= 8.0
    return cv2.cvtColor(np.clip(lab + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _mean_change(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int32) - b).mean())


def test_a_zoom_in_keeps_its_colours_where_global_matching_shifts_them(
    scene: np.ndarray,
) -> None:
    zoomed = _zoomed_in(scene)
    remixed = ColourReference(scene).match(zoomed)
    global_ = ColourReference(scene, clusters=1).match(zoomed)
    # global matching hands the missing sky's share of the histogram to the ground
    assert _mean_change(global_, zoomed) > 6.0
    assert _mean_change(remixed, zoomed) < 0.25 * _mean_change(global_, zoomed)


def test_a_real_drift_is_still_undone(scene: np.ndarray) -> None:
    reference = ColourReference(scene)
    for frame in (scene, _zoomed_in(scene)):
        drifted = _tinted(frame)
        # what matching makes of the drifted frame is close to what it makes of the frame
        remaining = _mean_change(reference.match(drifted), reference.match(frame))
        assert remaining < 0.4 * _mean_change(drifted, frame)


def test_the_palette_is_deterministic_and_round_trips(scene: np.ndarray) -> None:
    palette = Palette.of(scene)
    again = Palette.of(scene.copy())
    assert np.array_equal(palette.centres, again.centres)
    assert np.array_equal(palette.histograms, again.histograms)
    restored = Palette.from_array(palette.to_array())
    assert np.array_equal(restored.centres, palette.centres)
    assert np.array_equal(restored.histograms, palette.histograms)
    with pytest.raises(ValueError, match="771"):
        Palette.from_array(np.zeros((4, 770)))


def test_histograms_and_shares_add_up(scene: np.ndarray) -> None:
    palette = Palette.of(scene, clusters=6)
    assert palette.centres.shape == (6, 3) and palette.histograms.shape == (6, 3, 256)
    assert np.allclose(palette.histograms.sum(axis=(0, 2)), 1.0)  # per channel, all pixels
    shares = palette.shares(scene)
    assert shares.shape == (6,) and np.isclose(shares.sum(), 1.0)
    # the reference re-mixed to its own composition is (nearly) its own histogram
    own = palette.histograms.sum(axis=0)
    assert np.abs(palette.expected_histograms(scene) - own).sum(axis=1).max() < 0.1


def test_one_cluster_is_the_global_histogram(scene: np.ndarray) -> None:
    palette = Palette.of(scene, clusters=1)
    other = procedural_scene(192, 128, 2)[0]
    assert np.allclose(palette.expected_histograms(other), palette.histograms[0])


def test_a_flat_reference_has_well_defined_clusters() -> None:
    flat = np.full((16, 16, 3), (90, 140, 60), np.uint8)
    palette = Palette.of(flat, clusters=4)
    assert np.all(np.isfinite(palette.centres))
    assert np.allclose(palette.expected_histograms(flat).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="clusters"):
        Palette.of(flat, clusters=0)
