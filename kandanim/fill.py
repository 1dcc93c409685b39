"""Hole filling for the preview engine: classical, fast, deterministic.

The Kandinsky engine fills holes with diffusion inpainting behind the same small
interface. Here a push-pull pyramid fills large regions (the border strips of a zoom-out)
in a few milliseconds, and OpenCV's Telea inpainting refines thin cracks, where it is
both fast and sharper than a pyramid.
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

THIN_HOLE_LIMIT = 0.004  # below this share of the frame, Telea inpainting is cheap enough


class Filler(Protocol):
    def fill(self, image: np.ndarray, holes: np.ndarray) -> np.ndarray:
        """Return `image` (uint8 (H, W, 3)) with the `holes` (bool (H, W)) filled; every
        pixel outside `holes` is returned unchanged."""


class ClassicalFiller:
    def __init__(self, inpaint_radius: int = 3) -> None:
        self.inpaint_radius = inpaint_radius

    def fill(self, image: np.ndarray, holes: np.ndarray) -> np.ndarray:
        _check(image, holes)
        if not holes.any():
            return image
        if holes.mean() < THIN_HOLE_LIMIT:
            mask = holes.astype(np.uint8)
            filled = cv2.inpaint(image, mask, self.inpaint_radius, cv2.INPAINT_TELEA)
        else:
            filled = push_pull(image, holes)
        out = image.copy()
        np.copyto(out, filled, where=holes[..., None])
        return out


def push_pull(image: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill holes from a pyramid of known pixels: average down until nothing is missing,
    then blend each finer level over the coarser estimate by its known-pixel weight.

    Only hole pixels of the result are meaningful. The pyramid starts at half size (the
    fill is smooth anyway), which keeps the full-resolution work to two resizes.
    """
    height, width = holes.shape
    known = (~holes).astype(np.uint8)
    half = (max(width // 2, 1), max(height // 2, 1))
    # premultiplied colour and known-pixel weight, averaged down
    colour = cv2.resize(image * known[..., None], half, interpolation=cv2.INTER_AREA)
    weight = cv2.resize(known * np.uint8(255), half, interpolation=cv2.INTER_AREA)
    colour = colour.astype(np.float32)
    weight = weight.astype(np.float32) / 255.0
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    while min(weight.shape) > 1 and weight.min() <= 0.0:
        levels.append((colour, weight))
        size = (max(weight.shape[1] // 2, 1), max(weight.shape[0] // 2, 1))
        colour = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
    estimate = colour / np.maximum(weight, 1e-6)[..., None]
    for colour, weight in reversed(levels):
        size = (weight.shape[1], weight.shape[0])
        coarse = cv2.resize(estimate, size, interpolation=cv2.INTER_LINEAR)
        # premultiplied: this level's known share, the rest from the coarser estimate
        estimate = colour + coarse * (1.0 - np.minimum(weight, 1.0))[..., None]
    estimate = np.clip(estimate + 0.5, 0, 255).astype(np.uint8)
    return cv2.resize(estimate, (width, height), interpolation=cv2.INTER_LINEAR)


def _check(image: np.ndarray, holes: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if holes.shape != image.shape[:2] or holes.dtype != np.bool_:
        raise ValueError(f"expected a bool {image.shape[:2]} mask, got {holes.dtype} {holes.shape}")
