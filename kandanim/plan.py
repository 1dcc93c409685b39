"""Screenplay → the baked per-frame plan.

The plan is plain, serialisable data: everything the renderer needs, one record per
output frame, with absolute camera poses already evaluated. The renderer never
interpolates keyframes. This module must not import torch (validate/plan stay instant).

Rules decided here (`build_plan`):

* Frames: scene k lasts `frame_count(duration, fps)` = round(duration × fps) frames
  (halves round up), back to back; a scene shorter than one frame is an error.
* Settings: scene > `defaults:` > the effect preset's `settings` > `spec.BUILTIN_SETTINGS`.
  Depth: with the `preview` engine and no `depth` in the scene or `defaults:`, `auto`
  (the built-in scene's true depth, a ground plane under a photo).
* Camera: one continuous path, see `trajectory.camera_path`.
* Strength schedules are evaluated per frame at the scene's local time; under cadence N
  a frame is diffused when its index within the scene is a multiple of N, and the last
  frame of every scene is.
* Transitions: scene k's transition (scene > `defaults:` > the screenplay's `transition`
  > dissolve 1 s) says how scene k is entered; scene 0 has none. Its window of
  round(duration × fps) frames is centred on the cut and shrunk symmetrically to fit:
  a scene with transitions on both sides gives at most half its frames to each. Frames in
  the window blend scene k-1 (`blend_from`) into k (`blend_to`) with a smoothstep weight.
* Seeds: `seed=` argument > screenplay `seed:` > a random one (`secrets`). A scene's seed
  is its own `seed:`, else (plan seed + 1000 × scene index) mod 2³²; the engine seeds
  each frame with scene seed + the frame's index in the video, so scenes never share noise.
* Models: screenplay `models:` > environment `KANDANIM_PRIOR`, `_DECODER`, `_INPAINT`,
  `_DEPTH` > the spec's defaults (the depth model per backend unless overridden).
"""

from __future__ import annotations

import itertools
import os
import secrets
import typing
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kandanim import spec
from kandanim.camera import Pose
from kandanim.errors import UserError
from kandanim.trajectory import camera_path, ease, scene_motion, schedule_value

if TYPE_CHECKING:
    from kandanim.screenplay import LoadedScreenplay

SEED_MODULUS = 2**32
SCENE_SEED_STRIDE = 1000
MODEL_ROLES = spec.MODEL_ROLES


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
    custom_camera: bool = False  # the scene adds its own `camera:` keyframes


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
    base_dir: Path | None = None  # the screenplay's folder: shared paths are relative to it
    # The size asked for when it is not a multiple of 64 on each side: frames are made at
    # width × height (the enclosing multiple, what Kandinsky needs) and centre-cropped.
    crop: tuple[int, int] | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the video written."""
        return self.crop or (self.width, self.height)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def depth_model(self, backend: str) -> str | None:
        """Model id or folder for a depth backend (None for `heuristic` and `flat`)."""
        if backend not in spec.DEFAULT_DEPTH_MODELS:
            return None
        return self.models.get("depth") or spec.DEFAULT_DEPTH_MODELS[backend]

    def inputs(self) -> list[tuple[str, Path]]:
        """(role, path) of every file the render reads: init images and the soundtrack."""
        found = [
            (f"init image of scene {s.index + 1}", s.init_image)
            for s in self.scenes
            if s.init_image is not None
        ]
        if self.audio:
            found.append(("soundtrack", Path(self.audio["path"])))
        return found

    def to_json(self) -> dict[str, Any]:
        """The `plan --json` document (SPEC §4). File paths are relative to the screenplay
        (`shared_path`): the document goes into sidecars and video metadata."""
        scenes = [_jsonable(asdict(s)) for s in self.scenes]
        for entry, scene in zip(scenes, self.scenes, strict=True):
            if scene.init_image is not None:
                entry["init_image"] = shared_path(scene.init_image, self.base_dir)
        document: dict[str, Any] = {
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "frames": self.frame_count,
            "seed": self.seed,
            "engine": self.engine,
        }
        if self.crop is not None:  # rendered at width × height, written at the asked size
            document["output_width"], document["output_height"] = self.crop
        if self.audio:
            document["audio"] = {**self.audio, "path": shared_path(Path(self.audio["path"]),
                                                                   self.base_dir)}
        document["scenes"] = scenes
        document["records"] = [_jsonable(asdict(f)) for f in self.frames]
        return document


def shared_path(path: Path, base_dir: Path | None) -> str:
    """How a file is named in what kandanim shares (sidecars, metadata): relative to the
    screenplay's folder when inside it, else its bare name, never a user's absolute path
    (which names their home folder, account and projects)."""
    if base_dir is not None:
        try:
            return Path(path).relative_to(base_dir).as_posix()
        except ValueError:
            pass
    return Path(path).name


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float):
        return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0: stable, diffable output
    return value


# --------------------------------------------------------------------------- building


frame_count = spec.frame_count  # the rule lives with the format; kept here for callers


def build_plan(
    loaded: LoadedScreenplay,
    *,
    seed: int | None = None,
    engine: str | None = None,
    fps: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> Plan:
    """Resolve a loaded screenplay into the per-frame plan (see the module docstring).

    The arguments override the screenplay (`--seed`, `--engine`, a preview's fps).
    Raises UserError for an override out of range or a scene shorter than one frame.
    """
    play = loaded.screenplay
    fps = _checked_fps(play.fps if fps is None else fps)
    engine = _checked_engine(play.engine if engine is None else engine)
    plan_seed = _plan_seed(seed, play.seed)
    settings = [
        _scene_settings(scene, play, preset, engine)
        for scene, preset in zip(play.scenes, loaded.effects, strict=True)
    ]
    counts = [_scene_frames(i, s["duration"], fps) for i, s in enumerate(settings)]
    starts = [0, *itertools.accumulate(counts)][:-1]
    windows = _transition_windows(settings, counts, starts, fps, notify or (lambda _: None))
    scenes = tuple(
        _scene_plan(i, scene, preset, s, starts[i], counts[i], plan_seed, windows.get(i))
        for i, (scene, preset, s) in enumerate(zip(play.scenes, loaded.effects, settings))
    )
    motions = [
        scene_motion(preset, scene.camera, count / fps)
        for scene, preset, count in zip(play.scenes, loaded.effects, counts)
    ]
    poses = camera_path(motions, counts, fps)
    frames = _frames(scenes, settings, poses, windows, fps)
    asked = play.size
    width, height = spec.model_size(*asked)
    audio = None
    if play.audio is not None:
        audio = {"path": str(play.audio.path), "volume": play.audio.volume, "fade": play.audio.fade}
    return Plan(
        fps=fps,
        width=width,
        height=height,
        seed=plan_seed,
        engine=engine,
        scenes=scenes,
        frames=frames,
        models=resolve_models(play.models),
        audio=audio,
        output=play.output,
        title=play.title,
        base_dir=loaded.base_dir,
        crop=asked if asked != (width, height) else None,
    )


def resolve_models(models: spec.Models, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Model ids or folders by role, by `spec.resolve_model_ids` (screenplay > environment
    > defaults; `depth` only when overridden, see `Plan.depth_model`)."""
    chosen = models.model_dump()
    return spec.resolve_model_ids(chosen, dict(os.environ) if environ is None else environ)


def _checked_fps(fps: int) -> int:
    if not 1 <= fps <= 120:
        raise UserError(f"fps must be between 1 and 120, got {fps}", hint="24 is the default")
    return fps


def _checked_engine(engine: str) -> str:
    if engine not in typing.get_args(spec.EngineName):
        raise UserError(
            f"unknown engine '{engine}'",
            hint="use --engine kandinsky (diffusion) or --engine preview (no weights, CPU)",
        )
    return engine


def _plan_seed(argument: int | None, screenplay: int | None) -> int:
    for chosen in (argument, screenplay):
        if chosen is not None:
            if not 0 <= chosen < SEED_MODULUS:
                raise UserError(f"seed must be between 0 and {SEED_MODULUS - 1}, got {chosen}")
            return chosen
    return secrets.randbelow(SEED_MODULUS)


def _scene_settings(
    scene: spec.Scene, play: spec.Screenplay, preset: spec.Preset | None, engine: str
) -> dict[str, Any]:
    """Every SceneSettings field resolved: scene > defaults > preset > built-in."""
    layers: list[Any] = [scene, play.defaults]
    if preset is not None:
        layers.append(preset.settings)  # has only some fields: getattr(..., None) below
    resolved: dict[str, Any] = {}
    for name in spec.SceneSettings.model_fields:
        if name == "transition":
            continue
        chosen = [getattr(layer, name, None) for layer in layers]
        resolved[name] = next((v for v in chosen if v is not None), spec.BUILTIN_SETTINGS[name])
    if engine == "preview" and scene.depth is None and play.defaults.depth is None:
        resolved["depth"] = "auto"  # no weights in preview (SPEC §7)
    entered = scene.transition or play.defaults.transition or play.transition
    resolved["transition"] = entered or spec.BUILTIN_SETTINGS["transition"]
    return resolved


def _scene_frames(index: int, duration: float, fps: int) -> int:
    count = frame_count(duration, fps)
    if count < 1:
        raise UserError(
            f"scene {index + 1} lasts {duration:g} s, less than one frame at {fps} fps",
            hint=f"make it at least {1 / fps:.3g} s long",
        )
    return count


@dataclass(frozen=True)
class _Window:
    """Frames [first, first + len(weights)) blend scene `scene - 1` into `scene`."""

    first: int
    weights: tuple[float, ...]


def _transition_windows(
    settings: Sequence[dict[str, Any]],
    counts: Sequence[int],
    starts: Sequence[int],
    fps: int,
    notify: Callable[[str], None],
) -> dict[int, _Window]:
    """Window entering each scene k ≥ 1 with a non-cut transition (and room for one).
    A window that does not fit its scenes is shortened, with a notice."""
    wanted = [0] + [
        0 if s["transition"].type == "cut" else frame_count(s["transition"].duration, fps)
        for s in settings[1:]
    ]
    has_in = [n > 0 for n in wanted]
    has_out = has_in[1:] + [False]
    windows: dict[int, _Window] = {}
    for k in range(1, len(counts)):
        if not wanted[k]:
            continue
        room_before = counts[k - 1] // 2 if has_in[k - 1] else counts[k - 1]
        room_after = counts[k] - counts[k] // 2 if has_out[k] else counts[k]
        before, after = wanted[k] // 2, wanted[k] - wanted[k] // 2
        if before > room_before or after > room_after:  # shrink, staying centred on the cut
            before = after = min(before, after, room_before, room_after)
            kind = settings[k]["transition"].type
            asked = settings[k]["transition"].duration
            notify(
                f"scene {k + 1}: the {asked:g} s {kind} is longer than its scenes allow; "
                f"shortened to {(before + after) / fps:g} s"
            )
        size = before + after
        if size:
            weights = tuple(ease("in-out", (j + 0.5) / size) for j in range(size))
            windows[k] = _Window(starts[k] - before, weights)
    return windows


def _scene_plan(
    index: int,
    scene: spec.Scene,
    preset: spec.Preset | None,
    settings: dict[str, Any],
    start: int,
    count: int,
    plan_seed: int,
    window: _Window | None,
) -> ScenePlan:
    seed = scene.seed if scene.seed is not None else (plan_seed + SCENE_SEED_STRIDE * index)
    return ScenePlan(
        index=index,
        prompt=scene.prompt,
        negative_prompt=settings["negative_prompt"],
        effect=preset.name if preset is not None else None,
        start=start,
        stop=start + count,
        duration=settings["duration"],
        seed=seed % SEED_MODULUS,
        steps=settings["steps"],
        guidance=settings["guidance"],
        cadence=settings["cadence"],
        depth=settings["depth"],
        colour_coherence=settings["colour_coherence"],
        sharpen=settings["sharpen"],
        init_image=scene.init_image,
        transition_in="cut" if index == 0 else settings["transition"].type,
        transition_frames=len(window.weights) if window is not None else 0,
        custom_camera=bool(scene.camera),
    )


def _frames(
    scenes: Sequence[ScenePlan],
    settings: Sequence[dict[str, Any]],
    poses: Sequence[Pose],
    windows: dict[int, _Window],
    fps: int,
) -> tuple[FramePlan, ...]:
    blends: dict[int, tuple[int, float]] = {}  # frame index → (scene blended to, weight)
    for k, window in windows.items():
        for j, weight in enumerate(window.weights):
            blends[window.first + j] = (k, weight)
    frames: list[FramePlan] = []
    for scene, resolved in zip(scenes, settings):
        count = scene.stop - scene.start
        for local in range(count):
            index = scene.start + local
            local_t = local / fps
            blend = blends.get(index)
            frames.append(
                FramePlan(
                    index=index,
                    scene=scene.index,
                    t=index / fps,
                    local_t=local_t,
                    pose=poses[index],
                    fov=resolved["fov"],
                    near=resolved["near"],
                    far=resolved["far"],
                    strength=schedule_value(resolved["strength"], local_t),
                    diffuse=local % scene.cadence == 0 or local == count - 1,
                    transition=blend[1] if blend else 0.0,
                    blend_from=blend[0] - 1 if blend else None,
                    blend_to=blend[0] if blend else None,
                )
            )
    return tuple(frames)
