"""Screenplay → the baked per-frame plan.

The plan is plain, serialisable data: everything the renderer needs, one record per
output frame, with absolute camera poses already evaluated. The renderer never
interpolates keyframes. This module must not import torch (validate/plan stay instant).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kandanim.camera import Pose


@dataclass(frozen=True)
class ScenePlan:
    """One scene with every setting resolved (scene > defaults > preset > built-in)."""

    index: int
    prompt: str
    negative_prompt: str
    effect: str | None  # canonical preset name, None for a pure `camera:` scene
    start: int  # first output frame of the scene (by the cut), inclusive
    stop: int  # exclusive; stop - start == round(duration * fps)
    duration: float
    seed: int  # the scene's base seed; frame seed = seed + global frame index
    steps: int
    guidance: float
    cadence: int
    depth: str
    colour_coherence: bool
    sharpen: float
    init_image: Path | None
    transition_in: str  # 'cut' | 'dissolve' | 'morph': how this scene is entered
    transition_frames: int  # length of the overlap window with the previous scene (0 for cut)


@dataclass(frozen=True)
class FramePlan:
    """One output frame.

    `pose` is the absolute camera pose (one continuous camera for the whole video); the
    per-frame camera move is the difference of consecutive poses. Inside a transition
    window the output is `(1 - transition) * blend_from + transition * blend_to`, where
    both scene streams follow this same camera.
    """

    index: int
    scene: int  # scene whose [start, stop) contains the frame
    t: float  # seconds from the start of the video
    local_t: float  # seconds from the start of `scene`
    pose: Pose
    fov: float
    near: float
    far: float
    strength: float
    diffuse: bool  # under cadence: is this frame diffused (else warp-interpolated)
    transition: float = 0.0  # weight of `blend_to`, 0 outside transition windows
    blend_from: int | None = None
    blend_to: int | None = None


@dataclass(frozen=True)
class Plan:
    fps: int
    width: int
    height: int
    seed: int
    engine: str
    scenes: tuple[ScenePlan, ...]
    frames: tuple[FramePlan, ...]
    models: dict[str, str] = field(default_factory=dict)
    audio: dict[str, Any] | None = None
    output: Path | None = None
    title: str | None = None

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def to_json(self) -> dict[str, Any]:
        """The `plan --json` document (SPEC §4)."""
        return {
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "frames": self.frame_count,
            "seed": self.seed,
            "engine": self.engine,
            "scenes": [_jsonable(asdict(s)) for s in self.scenes],
            "records": [_jsonable(asdict(f)) for f in self.frames],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6)
    return value
