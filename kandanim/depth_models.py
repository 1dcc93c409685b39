"""Depth from neural models: MiDaS (DPT hybrid) and Depth Anything V2, via transformers.

Both predict *relative inverse depth* (disparity: larger = nearer, arbitrary scale and
offset), which is exactly what `kandanim.depth.DepthEstimator` promises; `DepthTracker`
normalises it and smooths it over time. This module only runs the model and resizes the
prediction back to the frame. `kandanim.depth.create_estimator` imports it lazily, so the
`preview` engine with heuristic depth never imports transformers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from kandanim.errors import UserError
from kandanim.models import (
    load_or_explain,
    local_only,
    out_of_memory_as_failure,
    resolve_dtype,
)
from kandanim.spec import DEFAULT_DEPTH_MODELS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputFormat:
    """How a model family wants its input image (the settings its hub repo ships)."""

    size: int
    keep_aspect_ratio: bool
    multiple_of: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


# DPT's ViT in transformers reshapes tokens into a square grid, so MiDaS gets a square
# 384×384 input; Depth Anything's DINOv2 takes any multiple of its 14 px patch.
INPUT_FORMATS: dict[str, InputFormat] = {
    "dpt": InputFormat(384, False, 1, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "depth_anything": InputFormat(518, True, 14, IMAGENET_MEAN, IMAGENET_STD),
}


class ModelDepthEstimator:
    """A loaded depth model on a device: RGB uint8 frame → (H, W) float32 inverse depth."""

    def __init__(self, model: Any, input_format: InputFormat, device: torch.device) -> None:
        from transformers import DPTImageProcessorPil

        self.model = model
        self.device = device
        self.dtype = next(model.parameters()).dtype
        # constructed directly: the auto class warns that torchvision is absent
        self.processor = DPTImageProcessorPil(
            size={"height": input_format.size, "width": input_format.size},
            keep_aspect_ratio=input_format.keep_aspect_ratio,
            ensure_multiple_of=input_format.multiple_of,
            image_mean=list(input_format.mean),
            image_std=list(input_format.std),
            resample=3,  # bicubic
        )

    @torch.no_grad()
    def inverse_depth(self, image: np.ndarray) -> np.ndarray:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}"
            )
        height, width = image.shape[:2]
        pixels = self.processor(images=image, return_tensors="pt")["pixel_values"]
        with out_of_memory_as_failure("estimating depth"):
            pixels = pixels.to(self.device, self.dtype)
            predicted = self.model(pixel_values=pixels).predicted_depth  # (1, h, w)
            resized = torch.nn.functional.interpolate(
                predicted[:, None].float(),
                size=(height, width),
                mode="bilinear",
                align_corners=False,
            )
        return resized[0, 0].cpu().numpy().astype(np.float32, copy=False)


def create_model_estimator(
    name: str, model_id: str | None, device: str, dtype: torch.dtype | None = None
) -> ModelDepthEstimator:
    """Load the depth model for backend `name` ('midas' | 'depth-anything').

    `model_id` (hub id or local folder) defaults to the backend's model; the architecture
    is read from the weights' config, so any DPT or Depth Anything checkpoint works.
    Missing weights raise `WeightsMissing` with the remedies.
    """
    if name not in DEFAULT_DEPTH_MODELS:
        raise UserError(
            f"unknown depth model backend {name!r}",
            hint=f"expected one of {', '.join(DEFAULT_DEPTH_MODELS)}",
        )
    model_id = model_id or DEFAULT_DEPTH_MODELS[name]
    torch_device = torch.device(device)
    dtype = dtype or resolve_dtype("auto", torch_device)

    def load() -> Any:
        from transformers import AutoModelForDepthEstimation

        return AutoModelForDepthEstimation.from_pretrained(
            model_id, dtype=dtype, local_files_only=local_only(model_id)
        )

    model = load_or_explain("depth", model_id, load).to(torch_device).eval()
    model_type = model.config.model_type
    if model_type not in INPUT_FORMATS:
        raise UserError(
            f"{model_id} is a {model_type!r} model; the depth backends run DPT (MiDaS) or "
            "Depth Anything checkpoints",
            hint="set `models: depth:` to such a checkpoint, or remove it to use the default",
        )
    return ModelDepthEstimator(model, INPUT_FORMATS[model_type], torch_device)
