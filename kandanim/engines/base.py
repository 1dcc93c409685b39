"""The small protocol the render loop drives. Engines make images; the loop owns motion.

The render loop (`kandanim.render`) does depth → warp → `repair` → colour coherence for
every frame, cadence and transitions; an engine only answers the questions below.

Two optional attributes change how the loop draws a stream: `anchored = True` (an engine
that never repaints frames, the preview) has every frame sampled once from a sharp anchor
instead of warped from the previous frame (`kandanim.anchors`), and a method
`view(scene, rotation, translation) -> image | None` lets an engine draw its own world
from any camera move relative to the stream's first frame (the preview's built-in scene).
Frames are RGB `uint8` arrays of shape (H, W, 3); masks are `bool` arrays of shape (H, W).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from kandanim.depth import DepthEstimator
from kandanim.plan import FramePlan, Plan, ScenePlan

# (scene index, weight) pairs whose prompt embeddings condition a frame. One pair with
# weight 1 normally; two during a `morph` transition, where the engine slerps embeddings.
Conditioning = Sequence[tuple[int, float]]


class Engine(Protocol):
    name: str

    def prepare(self, plan: Plan) -> None:
        """Get ready for a plan: load models once per process, cache prompt embeddings."""

    def first_frame(
        self, scene: ScenePlan, frame: FramePlan, source: np.ndarray | None
    ) -> np.ndarray:
        """The first frame of `scene`.

        `scene.init_image` wins; else, when `source` is given (the previous scene's frame at
        the start of a dissolve), the frame is made from it with this scene's prompt so the
        two share layout; else text-to-image (kandinsky) or a procedural scene (preview).
        """

    def repair(
        self,
        warped: np.ndarray,
        holes: np.ndarray,
        frame: FramePlan,
        scene: ScenePlan,
        conditioning: Conditioning,
    ) -> np.ndarray:
        """Make a warped frame a clean image again: fill `holes`, then (diffusion engines)
        img2img at `frame.strength` with seed `scene.seed + frame.index`."""

    def depth_estimator(self, backend: str) -> DepthEstimator:
        """The estimator for a depth backend name ('heuristic', 'flat', 'midas', …)."""
