"""The screenplay and preset file formats as frozen pydantic models.

This module is the single home of every default value a user can set. It validates
shape and ranges only; file positions, did-you-mean suggestions and effect lookup live
in `screenplay.py`, which turns pydantic errors into `file:line:col` messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Easing = Literal["linear", "in", "out", "in-out"]
FOCUS_DISTANCE = 3.0
"""Scene units from the camera to the subject in the middle of a scene's first frame: the
effects' orbits pivot at this distance (presets/orbit-*.yaml), and each scene's depth is
scaled to put its subject there (SPEC §4)."""

DepthBackend = Literal["midas", "depth-anything", "auto", "ground", "heuristic", "flat"]
EngineName = Literal["kandinsky", "preview"]
TransitionType = Literal["dissolve", "morph", "cut"]

RESOLUTION_PRESETS: dict[str, tuple[int, int]] = {
    "landscape": (832, 448),
    "square": (640, 640),
    "portrait": (448, 832),
}
SIDE_MULTIPLE = 64  # Kandinsky's MoVQ downsamples by 8 and its UNet by 8 more
SIDE_MIN, SIDE_MAX = 64, 2048

DEFAULT_NEGATIVE_PROMPT = "low quality, bad image, cropped, out of frame"
DEFAULT_PRIOR = "kandinsky-community/kandinsky-2-2-prior"
DEFAULT_DECODER = "kandinsky-community/kandinsky-2-2-decoder"
DEFAULT_INPAINT = "kandinsky-community/kandinsky-2-2-decoder-inpaint"
DEFAULT_DEPTH_MODELS: dict[str, str] = {
    "midas": "Intel/dpt-hybrid-midas",
    "depth-anything": "depth-anything/Depth-Anything-V2-Small-hf",
}
MODEL_ROLES = ("prior", "decoder", "inpaint", "depth")
MODEL_ENV = {role: f"KANDANIM_{role.upper()}" for role in MODEL_ROLES}
_DEFAULT_MODELS = {"prior": DEFAULT_PRIOR, "decoder": DEFAULT_DECODER, "inpaint": DEFAULT_INPAINT}


def resolve_model_ids(
    chosen: Mapping[str, str | None], environ: Mapping[str, str]
) -> dict[str, str]:
    """The one rule for which weights a render uses, by role: `chosen` (the screenplay's
    `models:`, or a baked plan's) > the environment (`KANDANIM_PRIOR`, …) > the defaults.

    `depth` is present only when chosen or set in the environment; otherwise each depth
    backend uses its own default (`DEFAULT_DEPTH_MODELS`). Values are returned as given
    (`kandanim.models.ModelSpec` normalises `inpaint: none`).
    """
    resolved: dict[str, str] = {}
    for role in MODEL_ROLES:
        value = chosen.get(role) or environ.get(MODEL_ENV[role]) or _DEFAULT_MODELS.get(role)
        if value:
            resolved[role] = value
    return resolved


class Strict(BaseModel):
    # strict: no silent coercion of YAML values ("4" → 4, true → 1.0, 2.5 → int fails).
    # Paths opt out below, since YAML gives them as text.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


FilePath = Annotated[Path, Field(strict=False)]


class Keyframe(Strict):
    """One camera keyframe in the user convention of SPEC §4.

    A field left out holds the value of the previous keyframe (0 on the first one).
    `ease` shapes the segment that *ends* at this keyframe.
    """

    t: float = Field(ge=0, description="time in seconds from the start of the scene")
    x: float | None = Field(None, description="right, scene units")
    y: float | None = Field(None, description="up, scene units")
    z: float | None = Field(None, description="forward into the scene, scene units")
    yaw: float | None = Field(None, description="degrees, positive turns the camera right")
    pitch: float | None = Field(None, description="degrees, positive tilts the camera up")
    roll: float | None = Field(None, description="degrees, positive rolls the camera clockwise")
    ease: Easing = "linear"


class ScheduleKey(Strict):
    t: float = Field(ge=0, description="seconds from the start of the scene")
    value: float
    ease: Easing = "linear"


Strength = Annotated[float, Field(gt=0, le=1)]


class StrengthKey(ScheduleKey):
    """A strength schedule key: its value is a strength, in (0, 1]."""

    value: Strength


StrengthSchedule = Strength | Annotated[list[StrengthKey], Field(min_length=1)]


class Transition(Strict):
    type: TransitionType = "dissolve"
    duration: float = Field(1.0, ge=0, description="seconds, centred on the cut")


class Audio(Strict):
    path: FilePath
    volume: float = Field(1.0, ge=0, le=4)
    fade: float = Field(1.0, ge=0, description="fade-in and fade-out length in seconds")


class Models(Strict):
    prior: str | None = None
    decoder: str | None = None
    inpaint: str | None = None
    depth: str | None = None


class SceneSettings(Strict):
    """Fields a scene may set and `defaults:` may set for every scene.

    `None` means "not set here": the scene inherits from `defaults:`, then from the
    effect preset, then from the built-in default in `BUILTIN_SETTINGS`.
    """

    duration: float | None = Field(None, gt=0, le=3600, description="seconds")
    negative_prompt: str | None = None
    strength: StrengthSchedule | None = Field(
        None, description="img2img denoise strength per frame, a number or [{t, value}] keys"
    )
    steps: int | None = Field(None, ge=1, le=1000)
    guidance: float | None = Field(None, ge=0, le=50)
    cadence: int | None = Field(None, ge=1, le=16)
    depth: DepthBackend | None = None
    fov: float | None = Field(None, gt=5, lt=150, description="vertical field of view, degrees")
    near: float | None = Field(None, gt=0)
    far: float | None = Field(None, gt=0)
    colour_coherence: bool | None = None
    sharpen: float | None = Field(None, ge=0, le=2, description="unsharp-mask amount, 0 = off")
    transition: Transition | None = None


# The effect of a scene that sets neither `effect` nor `camera`: a living picture, never a
# frozen frame (repeated img2img on a static frame burns in).
DEFAULT_EFFECT = "in-place"

BUILTIN_SETTINGS: dict[str, object] = {
    "duration": 4.0,
    "negative_prompt": DEFAULT_NEGATIVE_PROMPT,
    "strength": 0.15,
    "steps": 50,
    "guidance": 4.0,
    "cadence": 1,
    "depth": "midas",
    "fov": 40.0,
    "near": 1.0,
    "far": 10.0,
    "colour_coherence": True,
    "sharpen": 0.0,
    "transition": Transition(),
}


class SceneDefaults(SceneSettings):
    """Every field of a scene, each optional: what `defaults:` may set (SPEC §3)."""

    prompt: str | None = Field(None, min_length=1, description="what the picture shows")
    effect: str | None = Field(None, description="a preset name, see `kandanim effects`")
    camera: Annotated[list[Keyframe], Field(min_length=1)] | None = Field(
        None, description="custom keyframes, added on top of the effect's motion"
    )
    init_image: FilePath | None = Field(
        None, description="start from this picture instead of text-to-image (relative path)"
    )
    seed: int | None = Field(None, ge=0, lt=2**32, description="this scene's seed")


# Fields a scene takes from `defaults:` by the loader (the settings are layered by the plan).
SCENE_ONLY_FIELDS = ("prompt", "effect", "camera", "init_image", "seed")


class Scene(SceneDefaults):
    """One scene. A field it leaves out comes from `defaults:`; the loader requires a
    prompt in one of the two, so after loading every scene has one."""


class Screenplay(Strict):
    version: Literal[1] = Field(1, description="screenplay format version")
    title: str | None = None
    output: FilePath | None = Field(
        None, description="video file (.mp4, .webm, .gif) or frame folder, relative to the script"
    )
    fps: int = Field(24, ge=1, le=120, description="frames per second")
    resolution: str = Field(
        "square",
        description="landscape (832x448), square (640x640), portrait (448x832) or 'WxH' with "
        f"even sides from {SIDE_MIN} to {SIDE_MAX} (rendered at the enclosing multiple of "
        f"{SIDE_MULTIPLE} and centre-cropped)",
        json_schema_extra={"examples": [*RESOLUTION_PRESETS, "768x512", "1920x1080"]},
    )
    seed: int | None = Field(None, ge=0, lt=2**32, description="base seed; random if left out")
    engine: EngineName = Field("kandinsky", description="kandinsky, or preview (no diffusion)")
    models: Models = Field(Models(), description="hub ids or local folders of the models")
    defaults: SceneDefaults = Field(
        SceneDefaults(), description="any scene field, for every scene; scenes override"
    )
    transition: Transition | None = Field(
        None, description="how scenes join (a scene may override)"
    )
    audio: Audio | None = Field(None, description="soundtrack, trimmed and faded to the video")
    scenes: Annotated[list[Scene], Field(min_length=1)]

    @field_validator("resolution")
    @classmethod
    def _known_resolution(cls, value: str) -> str:
        parse_resolution(value)
        return value

    @property
    def size(self) -> tuple[int, int]:
        return parse_resolution(self.resolution)


class PresetSettings(Strict):
    """Render defaults an effect brings (a scene or `defaults:` overrides them)."""

    strength: StrengthSchedule | None = None
    cadence: int | None = Field(None, ge=1, le=16)
    fov: float | None = Field(None, gt=5, lt=150)
    near: float | None = Field(None, gt=0)
    far: float | None = Field(None, gt=0)


class Preset(Strict):
    """A camera effect: keyframes in the same format as a scene's `camera:` block."""

    name: str
    description: str
    aliases: list[str] = []
    span: Literal["seconds", "scene"] = Field(
        "seconds",
        description="seconds: keyframe t in seconds, motion continues at the last segment's "
        "rate after the last key; scene: t in 0..1 is a fraction of the scene's duration",
    )
    keyframes: Annotated[list[Keyframe], Field(min_length=1)]
    settings: PresetSettings = PresetSettings()


def frame_count(duration: float, fps: int) -> int:
    """Frames of a scene: round(duration × fps) with halves rounded up (SPEC §5).

    The small epsilon absorbs binary noise (0.1 × 30 = 3.0000000000000004 is 3 frames).
    A scene must last at least one frame: the loader reports one that does not.
    """
    return math.floor(duration * fps + 0.5 + 1e-9)


def parse_resolution(value: str) -> tuple[int, int]:
    """'landscape' | 'square' | 'portrait' | 'WxH' → (width, height); ValueError otherwise.

    Any even width and height in [SIDE_MIN, SIDE_MAX] is accepted (SPEC §3); Kandinsky
    renders at `model_size` and the frames are centre-cropped to exactly this size.
    """
    text = value.strip().lower()
    if text in RESOLUTION_PRESETS:
        return RESOLUTION_PRESETS[text]
    parts = text.replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        names = ", ".join(RESOLUTION_PRESETS)
        raise ValueError(f"expected one of {names} or 'WxH' such as '640x384', got {value!r}")
    width, height = (int(p) for p in parts)
    if all(_valid_side(s) for s in (width, height)):
        return width, height
    even = f"{_clamp(width + width % 2)}x{_clamp(height + height % 2)}"
    model_w, model_h = nearest_model_size(width, height)
    raise ValueError(
        f"sides must be even numbers between {SIDE_MIN} and {SIDE_MAX}, got {width}x{height}; "
        f"the nearest valid size is '{even}', and '{model_w}x{model_h}' keeps the aspect "
        "and renders without cropping"
    )


def model_size(width: int, height: int) -> tuple[int, int]:
    """The size Kandinsky renders at: the enclosing multiple of SIDE_MULTIPLE per side."""
    return (-(-width // SIDE_MULTIPLE) * SIDE_MULTIPLE, -(-height // SIDE_MULTIPLE) * SIDE_MULTIPLE)


def nearest_model_size(width: int, height: int) -> tuple[int, int]:
    """The closest size with sides multiples of SIDE_MULTIPLE that keeps the aspect ratio:
    the longer side rounded, the shorter one derived from it (853×480 → 832×448)."""
    long_side, short_side = max(width, height), max(min(width, height), 1)
    rounded_long = _clamp_multiple(round(long_side / SIDE_MULTIPLE) * SIDE_MULTIPLE)
    rounded_short = _clamp_multiple(
        round(rounded_long * short_side / long_side / SIDE_MULTIPLE) * SIDE_MULTIPLE
    )
    return (rounded_long, rounded_short) if width >= height else (rounded_short, rounded_long)


def _valid_side(side: int) -> bool:
    return SIDE_MIN <= side <= SIDE_MAX and side % 2 == 0


def _clamp(side: int) -> int:
    return min(max(side, SIDE_MIN), SIDE_MAX)


def _clamp_multiple(side: int) -> int:
    return min(max(side, SIDE_MIN), SIDE_MAX - SIDE_MAX % SIDE_MULTIPLE)
