"""Depth from tiny DPT (MiDaS) and Depth Anything models, loaded from folders offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kandanim.depth_models import INPUT_FORMATS, create_model_estimator
from kandanim.errors import UserError, WeightsMissing


def frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A frame with structure: a bright disc on a vertical gradient, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (y / height * 200).astype(np.float32)[..., None].repeat(3, axis=2)
    disc = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(height, width) / 4) ** 2
    base[disc] = 250
    return np.clip(base + rng.normal(0, 5, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["midas", "depth-anything"])
def estimator(request, tiny_models):
    folder = tiny_models.midas if request.param == "midas" else tiny_models.depth_anything
    return create_model_estimator(request.param, str(folder), "cpu")


@pytest.mark.parametrize("size", [(64, 64), (64, 128)])
def test_inverse_depth_is_a_float_map_of_the_frame_size(estimator, size):
    depth = estimator.inverse_depth(frame(*size))
    assert depth.shape == size and depth.dtype == np.float32
    assert np.isfinite(depth).all() and depth.std() > 0
    assert not np.array_equal(depth, estimator.inverse_depth(frame(*size, seed=1)))


def test_output_keeps_the_models_orientation(estimator):
    """Both families predict disparity (larger = nearer): the map is the model's own
    prediction resized, never inverted or negated."""
    image = frame(64, 64)
    pixels = estimator.processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        raw = estimator.model(pixel_values=pixels).predicted_depth[0].numpy()
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(raw)[None, None], size=(64, 64), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(estimator.inverse_depth(image), resized, rtol=1e-5, atol=1e-5)


def test_each_family_gets_its_own_input_format(tiny_models):
    midas = create_model_estimator("midas", str(tiny_models.midas), "cpu")
    anything = create_model_estimator("depth-anything", str(tiny_models.depth_anything), "cpu")
    wide = frame(64, 128)
    # MiDaS (DPT's ViT needs a square grid): 384²; Depth Anything keeps the aspect ratio
    assert midas.processor(images=wide, return_tensors="pt")["pixel_values"].shape[-2:] == (
        384,
        384,
    )
    height, width = anything.processor(images=wide, return_tensors="pt")["pixel_values"].shape[-2:]
    assert width > height and height % 14 == 0 and width % 14 == 0
    assert INPUT_FORMATS["depth_anything"].mean != INPUT_FORMATS["dpt"].mean


def test_missing_depth_weights_name_the_remedies(tmp_path):
    with pytest.raises(WeightsMissing) as caught:
        create_model_estimator("midas", str(tmp_path / "nothing"), "cpu")
    assert "kandanim models pull" in caught.value.message
    # the engine is not what is missing: the message points at depths without weights
    assert "--depth auto" in caught.value.message
    assert "--engine preview" not in caught.value.message


def test_default_hub_model_offline_is_weights_missing():
    with pytest.raises(WeightsMissing, match="Intel/dpt-hybrid-midas"):
        create_model_estimator("midas", None, "cpu")


def test_unknown_backend_and_bad_frames_are_rejected(tiny_models):
    with pytest.raises(UserError, match="unknown depth model backend"):
        create_model_estimator("zoedepth", None, "cpu")
    estimator = create_model_estimator("midas", str(tiny_models.midas), "cpu")
    with pytest.raises(ValueError, match="RGB uint8"):
        estimator.inverse_depth(np.zeros((64, 64), np.uint8))
