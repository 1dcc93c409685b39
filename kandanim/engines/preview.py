"""The `preview` engine (SPEC §7): no diffusion, no weights, deterministic, seconds on a CPU.

Frames come from `init_image` or the built-in procedural scene; holes left by the warp
are filled by classical inpainting. It is how users check camera moves and timing before
spending GPU time, and how every test and demo here runs end to end.
"""

from __future__ import annotations

import numpy as np

from kandanim.depth import DepthEstimator, create_estimator
from kandanim.engines.base import Conditioning
from kandanim.fill import ClassicalFiller
from kandanim.images import load_image
from kandanim.plan import FramePlan, Plan, ScenePlan
from kandanim.procedural import procedural_scene


class PreviewEngine:
    name = "preview"
    supports_morph = False  # no embeddings to slerp: morph falls back to dissolve

    def __init__(self) -> None:
        self.filler = ClassicalFiller()
        self._size = (0, 0)
        self._estimators: dict[str, DepthEstimator] = {}

    def prepare(self, plan: Plan) -> None:
        self._size = (plan.width, plan.height)

    def first_frame(
        self, scene: ScenePlan, frame: FramePlan, source: np.ndarray | None
    ) -> np.ndarray:
        width, height = self._size
        if scene.init_image is not None:
            return load_image(scene.init_image, width, height)
        # Without a prompt to repaint `source`, each scene gets its own look so that a
        # transition is visible; the variant follows the seed so renders are reproducible.
        image, _ = procedural_scene(width, height, variant=scene.seed % 1_000_003)
        return image

    def repair(
        self,
        warped: np.ndarray,
        holes: np.ndarray,
        frame: FramePlan,
        scene: ScenePlan,
        conditioning: Conditioning,
    ) -> np.ndarray:
        return self.filler.fill(warped, holes) if holes.any() else warped

    def depth_estimator(self, backend: str) -> DepthEstimator:
        if backend not in self._estimators:
            self._estimators[backend] = create_estimator(backend)
        return self._estimators[backend]
