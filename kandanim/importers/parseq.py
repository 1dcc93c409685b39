"""Parseq exports (`rendered_frames`) → `Animation`.

Parseq renders every field for every frame. Deforum reads motion from the `*_delta`
fields (`parseq_use_deltas`, its default; `zoom_delta` is Parseq's `1 + Δzoom`) and
everything else as absolute values; `options.output_fps` and `options.cadence` set fps and
cadence and the number of rendered frames sets the length (REALWORLD.md §A.4). Parseq
does not say 2D or 3D (Deforum's settings do): 3D when a 3D-only field is present, else 2D
when zoom or angle is, else 3D.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from kandanim.errors import UserError
from kandanim.importers.animation import MOTION_2D, MOTION_3D, Animation, Prompt, Report
from kandanim.importers.deforum import MAX_FRAMES, split_negative

DEFAULTS = {"translation_x": 0.0, "translation_y": 0.0, "translation_z": 0.0,
            "rotation_3d_x": 0.0, "rotation_3d_y": 0.0, "rotation_3d_z": 0.0, "angle": 0.0,
            "zoom": 1.0, "transform_center_x": 0.5, "transform_center_y": 0.5,
            "strength": 0.65, "fov": 70.0}
DELTA_FIELDS = ("translation_x", "translation_y", "translation_z", "rotation_3d_x",
                "rotation_3d_y", "rotation_3d_z", "angle", "zoom")
# Per-frame fields kandanim cannot honour, with the value that means "off".
UNSUPPORTED = {"noise": None, "contrast": 1.0, "subseed_strength": 0.0, "cfg": None,
               "perspective_flip_theta": 0.0, "perspective_flip_phi": 0.0,
               "perspective_flip_gamma": 0.0, "antiblur_amount": 0.0, "hybrid_comp_alpha": None}


def looks_like_parseq(data: object) -> bool:
    return isinstance(data, dict) and isinstance(data.get("rendered_frames"), list)


def read_parseq(data: Mapping[str, Any], source: str) -> Animation:
    frames = _frames(data, source)
    options = data.get("options") if isinstance(data.get("options"), dict) else {}
    report = Report()
    fields = set().union(*(f.keys() for f in frames))
    mode = "3D" if fields & {"translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z"} \
        else "2D" if fields & {"zoom", "angle"} else "3D"
    report.note(f"Parseq has no animation mode: {mode}, from the fields it renders")
    fps = _option(options, "output_fps", 20, source)
    cadence = _option(options, "cadence", 1, source)
    if cadence > 16:
        report.warn("look", f"cadence {cadence} → 16 (kandanim's largest)")
    motion = {name: _channel(frames, name, source) for name in (MOTION_3D if mode == "3D" else MOTION_2D)}
    report.note("motion from the *_delta fields, as Deforum reads Parseq by default")
    strength = 1.0 - _column(frames, "strength", source)
    report.note("strength = 1 − Parseq strength (Deforum's is the part of the frame kept)")
    if (strength < 0.01).any():
        report.warn("look", "strength above 0.99 clamped (kandanim needs some denoising)")
    seed = _column(frames, "seed", source)[0] if "seed" in fields else -1
    if seed >= 0:
        report.note("seed: the first frame's; kandanim seeds frame n with seed + n")
    for name, off in UNSUPPORTED.items():
        if name in fields:
            values = _column(frames, name, source, default=off if off is not None else 0.0)
            if off is None or np.any(np.abs(values - off) > 1e-9):
                report.warn("per-frame fields", name)
    return Animation(
        dialect=f"Parseq export {data.get('meta', {}).get('version', '')}".strip(),
        mode=mode, fps=fps, frames=len(frames), size=None, motion=motion,
        fov=_column(frames, "fov", source), aspect=np.ones(len(frames)),
        strength=np.clip(strength, 0.01, 1.0), prompts=_prompts(frames),
        cadence=min(cadence, 16), seed=int(seed) if seed >= 0 else None,
        depth_warping=mode == "3D", report=report,
    )


def _frames(data: Mapping[str, Any], source: str) -> list[Mapping[str, Any]]:
    frames = data["rendered_frames"]
    if not frames:
        raise UserError(f"{source}: rendered_frames: the export has no frames",
                        hint="render the timeline in Parseq before exporting")
    if len(frames) > MAX_FRAMES:
        raise UserError(f"{source}: rendered_frames: {len(frames)} frames (at most {MAX_FRAMES})")
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict) or frame.get("frame") != index:
            raise UserError(f"{source}: rendered_frames[{index}]: expected frame {index} here, "
                            f"found {frame.get('frame') if isinstance(frame, dict) else frame!r}")
    return frames


def _option(options: Mapping[str, Any], name: str, default: int, source: str) -> int:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 120:
        raise UserError(f"{source}: options.{name}: expected a number between 1 and 120, "
                        f"found {value!r}")
    return round(value)


def _column(frames: list[Mapping[str, Any]], name: str, source: str,
            default: float | None = None) -> np.ndarray:
    fallback = DEFAULTS.get(name, 0.0) if default is None else default
    out = np.empty(len(frames))
    for i, frame in enumerate(frames):
        value = frame.get(name, fallback)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{source}: rendered_frames[{i}].{name}: expected a number, "
                            f"found {value!r}")
        out[i] = value
    return out


def _channel(frames: list[Mapping[str, Any]], name: str, source: str) -> np.ndarray:
    if name in DELTA_FIELDS and any(f"{name}_delta" in f for f in frames):
        default = 1.0 if name == "zoom" else 0.0
        return _column(frames, f"{name}_delta", source, default=default)
    return _column(frames, name, source)


def _prompts(frames: list[Mapping[str, Any]]) -> list[Prompt]:
    prompts: list[Prompt] = []
    for i, frame in enumerate(frames):
        positive, negative = split_negative(str(frame.get("deforum_prompt", "")))
        if not prompts or (prompts[-1].positive, prompts[-1].negative) != (positive, negative):
            prompts.append(Prompt(i, positive, negative))
    return prompts
