"""The `preview` engine (SPEC §7): no diffusion, no weights, deterministic, seconds on a CPU.

Frames come from `init_image` or the built-in procedural scene. The render loop samples
every frame once from a sharp source (`anchored`): the built-in scene is drawn from each
camera pose by `kandanim.world` (`view`), a photo is warped from anchor frames
(`kandanim.anchors`). It is how users check camera moves and timing before spending GPU
time, and how every test and demo here runs end to end.
"""

from __future__ import annotations

import numpy as np

from kandanim.camera import intrinsics
from kandanim.depth import DepthEstimator, create_estimator
from kandanim.engines.base import Conditioning
from kandanim.fill import ClassicalFiller
from kandanim.images import load_image
from kandanim.plan import FramePlan, Plan, ScenePlan
from kandanim.procedural import procedural_scene
from kandanim.world import BuiltInWorld


class PreviewEngine:
    name = "preview"
    supports_morph = False  # no embeddings to slerp: morph falls back to dissolve
    anchored = True  # frames are never repainted: sample each from a sharp anchor

    def __init__(self) -> None:
        self.filler = ClassicalFiller()
        self._size = (0, 0)
        self._estimators: dict[str, DepthEstimator] = {}
        self._plan: Plan | None = None
        self._worlds: dict[int, BuiltInWorld] = {}

    def prepare(self, plan: Plan) -> None:
        self._size = (plan.width, plan.height)
        self._plan = plan
        self._worlds = {}

    def first_frame(
        self, scene: ScenePlan, frame: FramePlan, source: np.ndarray | None
    ) -> np.ndarray:
        width, height = self._size
        if scene.init_image is not None:
            return load_image(scene.init_image, width, height)
        # Without a prompt to repaint `source`, each scene gets its own look so that a
        # transition is visible; the variant follows the seed so renders are reproducible.
        world = self._world(scene)
        if world is not None:
            return world.view(np.eye(3), np.zeros(3))
        image, _ = procedural_scene(width, height, variant=scene.seed % 1_000_003)
        return image  # a depth backend of the scene's own choosing warps it

    def view(self, scene: ScenePlan, rotation: np.ndarray,
             translation: np.ndarray) -> np.ndarray | None:
        """The built-in world seen after the camera move (R, t) from the scene's first
        frame, or None when the scene is a photo or asks for a depth backend of its own
        (then the render loop warps anchors)."""
        world = self._world(scene)
        return world.view(rotation, translation) if world is not None else None

    def view_depth(self, scene: ScenePlan, rotation: np.ndarray,
                   translation: np.ndarray) -> np.ndarray | None:
        """The true depth (scene units) of `view(scene, rotation, translation)`."""
        world = self._world(scene)
        return world.view_depth(rotation, translation) if world is not None else None

    def _world(self, scene: ScenePlan) -> BuiltInWorld | None:
        if scene.init_image is not None or scene.depth != "auto" or self._plan is None:
            return None
        world = self._worlds.get(scene.index)
        if world is None:
            plan = self._plan
            frames = [f for f in plan.frames
                      if scene.index in (f.scene, f.blend_to, f.blend_from)]
            first = frames[0]
            turning_only = all(
                (f.pose.x, f.pose.y, f.pose.z) == (first.pose.x, first.pose.y, first.pose.z)
                for f in frames
            )
            K = intrinsics(plan.width, plan.height, first.fov)
            descent = max(first.pose.y - f.pose.y for f in frames)  # user y is up
            world = BuiltInWorld(plan.width, plan.height, scene.seed % 1_000_003, K,
                                 turning_only, focus=scene.effect is not None,
                                 descent=descent)
            self._worlds[scene.index] = world
        return world

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
        # 'auto' under a photo is its ground plane; the built-in world has its own depth
        if backend not in self._estimators:
            self._estimators[backend] = create_estimator(backend)
        return self._estimators[backend]
