"""Deforum settings (sd-webui-deforum, the old Colab, deforum-studio, the Forge fork,
deforum-kandinsky) → `Animation`.

The files are one flat JSON object of ~250 keys (REALWORLD.md §A.1, §A.6); the ~45 that
matter are read here, every other field that is set to something kandanim cannot honour
is reported (`_unsupported`). Schedules go through `schedules.py` — every schedule is
parsed (and so checked) before any is evaluated.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from kandanim.errors import UserError
from kandanim.importers.animation import MOTION_2D, MOTION_3D, Animation, Prompt, Report
from kandanim.importers.schedules import (
    KEY_NAMES,
    Schedule,
    ScheduleError,
    check_budget,
    compile_expression,
    parse_schedule,
)

MAX_FRAMES = 20_000  # 11 minutes at 30 fps (scenes last at most an hour): more is a mistake
SWD_DEFAULT_FPS = 15

# Keys that say "this is a Deforum settings file" (at least two must be present).
SIGNATURE = ("animation_mode", "max_frames", "translation_z", "rotation_3d_y", "diffusion_cadence",
             "strength_schedule", "prompts", "fov_schedule", "animation_prompts_positive")

# Numeric schedules kandanim reads, with sd-webui-deforum's defaults.
SCHEDULE_DEFAULTS = {
    "translation_x": "0: (0)", "translation_y": "0: (0)", "translation_z": "0: (0)",
    "rotation_3d_x": "0: (0)", "rotation_3d_y": "0: (0)", "rotation_3d_z": "0: (0)",
    "zoom": "0: (1)", "angle": "0: (0)",
    "transform_center_x": "0: (0.5)", "transform_center_y": "0: (0.5)",
    "strength_schedule": "0: (0.65)", "fov_schedule": "0: (70)", "aspect_ratio_schedule": "0: (1)",
    "amount_schedule": "0: (0.1)",
}

# Schedules kandanim cannot honour: (field, Deforum's default, group, what it is).
UNSUPPORTED_SCHEDULES = (
    ("noise_schedule", "0: (0.065)", "noise and contrast", "noise added to every frame"),
    ("contrast_schedule", "0: (1.0)", "noise and contrast", "contrast multiplied every frame"),
    ("kernel_schedule", "0: (5)", "sharpening", "unsharp kernel size"),
    ("sigma_schedule", "0: (1)", "sharpening", "unsharp sigma"),
    ("threshold_schedule", "0: (0)", "sharpening", "unsharp threshold"),
    ("keyframe_strength_schedule", None, "Forge keyframes", "keyframe strength"),
)

# Switches whose non-default value kandanim cannot honour: (field, default, group, label).
UNSUPPORTED_SWITCHES: tuple[tuple[str, Any, str, str], ...] = (
    ("hybrid_motion", "None", "hybrid video", "hybrid motion"),
    ("hybrid_composite", "None", "hybrid video", "hybrid composite"),
    ("hybrid_generate_human_masks", "None", "hybrid video", "human masks"),
    *((f"cn_{i}_enabled", False, "ControlNet", f"ControlNet {i}") for i in range(1, 6)),
    ("enable_perspective_flip", False, "perspective flip", "perspective flip"),
    ("flip_2d_perspective", False, "perspective flip", "perspective flip"),
    ("optical_flow_cadence", "None", "optical flow", "optical-flow cadence"),
    ("optical_flow_redo_generation", "None", "optical flow", "optical-flow redo"),
    ("diffusion_redo", "0", "optical flow", "diffusion redo"),
    ("use_mask", False, "masks", "init mask"),
    ("use_noise_mask", False, "masks", "noise mask"),
    ("use_mask_video", False, "masks", "video mask"),
    ("use_looper", False, "guided images", "guided images (looper)"),
    ("enable_subseed_scheduling", False, "seeds", "subseed schedule"),
    ("tiling", False, "look", "tiling"),
    ("color_force_grayscale", False, "look", "greyscale frames"),
    ("frame_interpolation_engine", "None", "output",
     "frame interpolation (render at a higher fps instead)"),
    ("r_upscale_video", False, "output", "upscaling"),
    ("keyframe_distribution", "Off", "Forge keyframes", "keyframe distribution"),
    ("freeu_enabled", False, "Stable Diffusion only", "FreeU"),
    ("kohya_hrfix_enabled", False, "Stable Diffusion only", "Kohya HR fix"),
)

# Stable-Diffusion sampling settings: reported once as a note (Kandinsky keeps its own).
SD_ONLY = ("sampler", "sampler_name", "scheduler", "steps", "cfg_scale_schedule", "sd_model_name",
           "checkpoint_schedule", "clipskip_schedule", "restore_faces", "wan_t2v_model")


def looks_like_settings(data: object) -> bool:
    return isinstance(data, dict) and sum(key in data for key in SIGNATURE) >= 2


def dialect_of(data: Mapping[str, Any]) -> str:
    if any(k in data for k in ("shake_name", "wan_prompts", "freeu_enabled")):
        return "Forge fork (sd-forge-deforum)"
    if "width" in data and "height" in data and "W" not in data:
        return "deforum-studio (new format)"
    if any(k in data for k in ("prompt_durations", "animations", "accelerations")):
        return "deforum-kandinsky"
    if any(k in data for k in ("cond_prompts", "near_plane", "flip_2d_perspective")):
        return "old Colab (deforum-stable-diffusion)"
    return "sd-webui-deforum"


class _Fields:
    """Reads fields of the settings; errors name the field and its line in the file."""

    def __init__(self, data: Mapping[str, Any], text: str, source: str) -> None:
        self.data, self.text, self.source = data, text, source

    def where(self, name: str, offset: int | None = None) -> str:
        """'FILE:line:col' of a field (of a character in its value when `offset` is given)."""
        match = re.search(r'"' + re.escape(name) + r'"\s*:\s*', self.text)
        if match is None:
            return self.source
        line = self.text.count("\n", 0, match.start()) + 1
        column = match.start() - (self.text.rfind("\n", 0, match.start()) + 1) + 1
        if offset is not None:  # inside the JSON string value: skip its opening quote
            column += match.end() - match.start() + 1 + offset
        return f"{self.source}:{line}:{column}"

    def fail(self, name: str, message: str, hint: str | None = None) -> UserError:
        return UserError(f"{self.where(name)}: {name}: {message}", hint=hint)

    def schedule_error(self, error: ScheduleError) -> UserError:
        return UserError(f"{self.where(error.field, error.offset)}: {error.message}",
                         hint=error.hint)

    def number(self, name: str, default: float, *aliases: str) -> float:
        for key in (name, *aliases):
            if key in self.data and self.data[key] is not None:
                value = self.data[key]
                if isinstance(value, str):
                    try:
                        value = float(value.strip())
                    except ValueError:
                        raise self.fail(key, f"expected a number, found {value!r}") from None
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not math.isfinite(value):
                    raise self.fail(key, f"expected a number, found {value!r}")
                return float(value)
        return float(default)

    def text_value(self, name: str, default: str = "") -> str:
        value = self.data.get(name, default)
        return default if value is None else str(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes")
        return bool(value)


def read_settings(data: Mapping[str, Any], text: str, source: str) -> Animation:
    """A Deforum settings object → Animation; UserError (exit 2) for what cannot be read."""
    fields = _Fields(data, text, source)
    report = Report()
    dialect = dialect_of(data)
    mode = _mode(fields)
    fps = _fps(fields, report)
    frames = int(fields.number("max_frames", 120))
    if not 1 <= frames <= MAX_FRAMES:
        raise fields.fail("max_frames", f"must be between 1 and {MAX_FRAMES}, found {frames}")
    seed = fields.number("seed", -1)
    schedules = _parse_all(fields, mode, frames, seed, report)
    values = {name: _values(fields, s, frames, seed) for name, s in schedules.items()}
    kept = dialect != "deforum-kandinsky"  # DK passes strength to diffusers as denoise
    strength = _strength(values["strength_schedule"], kept, report)
    motion_names = MOTION_3D if mode == "3D" else MOTION_2D
    animation = Animation(
        dialect=dialect, mode=mode, fps=fps, frames=frames, size=_size(fields),
        motion={name: values[name] for name in motion_names},
        fov=_fov(fields, values), aspect=values["aspect_ratio_schedule"],
        strength=strength, prompts=_prompts(fields, frames, seed, report),
        cadence=_cadence(fields, report), seed=None if seed < 0 else int(seed),
        depth_warping=mode == "3D" and fields.flag("use_depth_warping", True),
        colour_coherence=_colour(fields, report), sharpen=_sharpen(values["amount_schedule"], report),
        init_image=_init_image(fields, report), soundtrack=_soundtrack(fields, report),
        report=report,
    )
    if fields.flag("aspect_ratio_use_old_formula"):
        animation.aspect = np.full(frames, _aspect_of(animation))
    if mode == "2D":
        _check_zoom(fields, animation.motion["zoom"])
    _seed_notes(fields, animation, report)
    _unsupported(fields, frames, seed, report)
    return animation


def _aspect_of(animation: Animation) -> float:
    width, height = animation.size or (1, 1)
    return width / height


def _mode(fields: _Fields) -> str:
    mode = fields.text_value("animation_mode", "3D").strip()
    if mode.upper() in ("2D", "3D"):
        return mode.upper()
    if mode == "None":
        raise fields.fail("animation_mode", "'None' makes still images, not an animation",
                          hint="set animation_mode to 2D or 3D in Deforum and save again")
    raise fields.fail("animation_mode", f"'{mode}' has no kandanim equivalent (only 2D and 3D "
                      "camera motion can be imported)",
                      hint="kandanim renders camera motion; video input and interpolation "
                           "modes need their source video or frames")


def _fps(fields: _Fields, report: Report) -> int:
    fps = fields.number("fps", SWD_DEFAULT_FPS)
    if fps <= 0:
        raise fields.fail("fps", f"must be positive, found {fps:g}")
    chosen = min(max(round(fps), 1), 120)
    if chosen != fps:
        report.warn("timing", f"fps {fps:g} → {chosen} (kandanim renders 1–120 whole frames per "
                    "second; the video's length in frames is kept)")
    return chosen


def _size(fields: _Fields) -> tuple[int, int] | None:
    for w, h in (("W", "H"), ("width", "height")):
        if w in fields.data and h in fields.data:
            width, height = int(fields.number(w, 512)), int(fields.number(h, 512))
            if width <= 0 or height <= 0:
                raise fields.fail(w, f"the frame size must be positive, found {width}x{height}")
            return width, height
    return None


def _parse_all(fields: _Fields, mode: str, frames: int, seed: float,
               report: Report) -> dict[str, Schedule]:
    """Every schedule kandanim reads, parsed (so checked) before anything is evaluated."""
    names = [*SCHEDULE_DEFAULTS]
    schedules: dict[str, Schedule] = {}
    for name in names:
        text = fields.data.get(name)
        if text is None or (isinstance(text, str) and not text.strip()):
            text = SCHEDULE_DEFAULTS[name]
        try:
            schedules[name] = parse_schedule(text, name, max_frames=frames, seed=seed)
        except ScheduleError as error:
            raise fields.schedule_error(error) from None
    try:
        check_budget(list(schedules.values()), frames)
    except ScheduleError as error:
        raise fields.schedule_error(error) from None
    used = set(MOTION_3D if mode == "3D" else MOTION_2D) | {"strength_schedule", "fov_schedule"}
    for name in names:
        ignored = schedules[name].ignored(frames)
        if ignored and name in used:
            shown = f"frame {ignored[0]}" if len(ignored) == 1 else \
                f"{len(ignored)} keys at frames {ignored[0]}…{ignored[-1]}"
            report.warn("keys outside the video", f"{name}: {shown} (the video has frames "
                        f"0…{frames - 1})")
    return schedules


def _values(fields: _Fields, schedule: Schedule, frames: int, seed: float) -> np.ndarray:
    try:
        return schedule.values(frames, seed)
    except ScheduleError as error:
        raise fields.schedule_error(error) from None


def _strength(deforum: np.ndarray, kept: bool, report: Report) -> np.ndarray:
    strength = 1.0 - deforum if kept else deforum.copy()
    if kept:
        report.note("strength = 1 − Deforum strength (Deforum's is the part of the frame kept)")
    low = strength < 0.01
    if low.any() or (strength > 1).any():
        report.warn("look", f"strength outside kandanim's (0, 1] on {int(low.sum() + (strength > 1).sum())} "
                    "frames, clamped to 0.01…1")
    return np.clip(strength, 0.01, 1.0)


def _fov(fields: _Fields, values: dict[str, np.ndarray]) -> np.ndarray:
    fov = values["fov_schedule"]
    if "fov_schedule" not in fields.data and "fov" in fields.data:  # the old Colab's scalar
        fov = np.full_like(fov, fields.number("fov", 40))
    bad = np.flatnonzero((fov <= 0) | (fov >= 180))
    if bad.size:
        name = "fov_schedule" if "fov_schedule" in fields.data else "fov"
        raise fields.fail(name, f"fov {fov[bad[0]]:g} at frame {bad[0]} is outside 0…180 degrees "
                          "(Deforum flips or freezes the motion there)",
                          hint="use a field of view between 5 and 150 degrees")
    return fov


def _cadence(fields: _Fields, report: Report) -> int:
    cadence = int(fields.number("diffusion_cadence", 1))
    if cadence < 1:
        raise fields.fail("diffusion_cadence", f"must be at least 1, found {cadence}")
    if cadence > 16:
        report.warn("look", f"diffusion_cadence {cadence} → 16 (kandanim's largest)")
        return 16
    return cadence


def _colour(fields: _Fields, report: Report) -> bool:
    value = fields.text_value("color_coherence", "LAB").strip()
    if value in ("None", "", "False"):
        return False
    if value in ("Image", "Video Input"):
        report.warn("look", f"color_coherence '{value}' (kandanim matches the scene's first frame)")
    elif "LAB" not in value:
        report.note(f"color_coherence '{value}' → kandanim's colour match (LAB)")
    return True


def _sharpen(amount: np.ndarray, report: Report) -> float | None:
    value = float(np.median(amount))
    if np.ptp(amount) > 1e-9:
        report.warn("sharpening", f"amount_schedule varies; kandanim uses one sharpen amount "
                    f"({value:g})")
    return min(max(value, 0.0), 2.0)


def _check_zoom(fields: _Fields, zoom: np.ndarray) -> None:
    bad = np.flatnonzero(zoom <= 0)
    if bad.size:
        raise fields.fail("zoom", f"zoom {zoom[bad[0]]:g} at frame {bad[0]} must be above 0 "
                          "(1 = no zoom)")


# ---- prompts


def _prompts(fields: _Fields, frames: int, seed: float, report: Report) -> list[Prompt]:
    name, raw = _prompt_field(fields)
    positive = fields.text_value("animation_prompts_positive") or fields.text_value("positive_prompts")
    negative = fields.text_value("animation_prompts_negative") or fields.text_value("negative_prompts")
    uncond = fields.data.get("uncond_prompts")
    keyed: dict[int, tuple[str, str]] = {}
    ignored: list[int] = []
    for key, text in raw.items():
        frame = _prompt_frame(fields, name, str(key), frames, seed)
        if not 0 <= frame < frames:
            ignored.append(frame)
            continue
        pos, neg = split_negative(str(text))
        if isinstance(uncond, dict) and str(key) in uncond and not neg:
            neg = str(uncond[str(key)])
        keyed[frame] = combine(positive, pos, neg, negative)
    if ignored:
        report.warn("keys outside the video", f"{name}: prompts at frames "
                    f"{', '.join(map(str, sorted(ignored)))} (the video has frames 0…{frames - 1})")
    if not keyed:
        report.warn("prompts", "no prompt inside the video: the screenplay has one placeholder scene")
        keyed[0] = combine(positive, "", "", negative)
    return [Prompt(frame, pos, neg) for frame, (pos, neg) in sorted(keyed.items())]


def _prompt_field(fields: _Fields) -> tuple[str, dict[str, Any]]:
    for name in ("prompts", "animation_prompts", "cond_prompts"):
        value = fields.data.get(name)
        if isinstance(value, str):  # some tools store the dict as JSON text
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise fields.fail(name, "expected an object of frame: prompt") from None
        if isinstance(value, dict) and value:
            if all(isinstance(v, str) and v.strip().isdigit() for v in value.values()) and \
                    not all(str(k).strip().isdigit() for k in value):
                value = {v: k for k, v in value.items()}  # the old Colab's {text: "00000"}
            return name, value
        if isinstance(value, list) and value:
            return name, {str(i): v for i, v in enumerate(value)}
    return "prompts", {}


def _prompt_frame(fields: _Fields, name: str, key: str, frames: int, seed: float) -> int:
    cleaned = key.strip().strip("'\"")
    if cleaned.lstrip("-").isdigit():
        return int(cleaned)
    try:
        value = compile_expression(cleaned, KEY_NAMES).evaluate(max_f=frames - 1.0, s=seed)
    except ValueError as error:
        raise fields.fail(name, f"bad prompt key '{key}': {error}",
                          hint="a prompt key is a frame number or an expression of max_f") from None
    return int(value)


def split_negative(text: str) -> tuple[str, str]:
    """'positive --neg negative' → (positive, negative); later --neg parts join the negative."""
    parts = text.split("--neg")
    return parts[0].strip(), ", ".join(p.strip() for p in parts[1:] if p.strip())


def combine(global_positive: str, positive: str, negative: str,
            global_negative: str) -> tuple[str, str]:
    """Deforum's "{positive_prompts} {prompt} --neg {negative_prompts}", without doubling a
    global negative the prompt already holds."""
    pos = " ".join(p for p in (global_positive.strip(), positive.strip()) if p)
    negs = [negative.strip()]
    extra = global_negative.replace("--neg", "").strip()
    if extra and extra not in negs[0]:
        negs.append(extra)
    return pos, ", ".join(n for n in negs if n)


# ---- seed, files


def _seed_notes(fields: _Fields, animation: Animation, report: Report) -> None:
    behaviour = fields.text_value("seed_behavior", "iter")
    if animation.seed is None:
        report.note("seed -1 (random): kandanim picks one and prints it")
    if behaviour == "iter":
        report.note("seed_behavior iter: kandanim seeds frame n with seed + n (Deforum advances "
                    "once per diffused frame)")
    else:
        report.warn("seeds", f"seed_behavior '{behaviour}' (kandanim seeds frame n with seed + n)")


def _local_path(fields: _Fields, name: str, value: str, report: Report, group: str) -> str | None:
    if not value or value == "None":
        return None
    if re.match(r"^[a-z]+://", value, re.IGNORECASE):
        report.warn(group, f"{name} is a URL ({value}): download it and set the path by hand")
        return None
    return value


def _init_image(fields: _Fields, report: Report) -> str | None:
    if not fields.flag("use_init"):
        return None
    path = _local_path(fields, "init_image", fields.text_value("init_image"), report, "files")
    if path is not None:
        report.note(f"init image {path}: kandanim starts from the picture itself "
                    f"(Deforum's first-frame strength {fields.number('strength', 0.8):g} is not used)")
    return path


def _soundtrack(fields: _Fields, report: Report) -> str | None:
    mode = fields.text_value("add_soundtrack", "None")
    if mode == "None":
        return None
    if mode != "File":
        report.warn("files", f"add_soundtrack '{mode}' (only a soundtrack file can be carried over)")
        return None
    return _local_path(fields, "soundtrack_path", fields.text_value("soundtrack_path"), report,
                       "files")


# ---- what cannot be honoured


def _unsupported(fields: _Fields, frames: int, seed: float, report: Report) -> None:
    for name, default, group, label in UNSUPPORTED_SWITCHES:
        if name in fields.data and _differs(fields.data[name], default):
            report.warn(group, f"{label} ({name} = {fields.data[name]!r})")
    for name, default, group, label in UNSUPPORTED_SCHEDULES:
        text = fields.data.get(name)
        if not isinstance(text, str) or not text.strip():
            continue
        if default is not None and _same_schedule(fields, name, text, default, frames, seed):
            continue
        report.warn(group, f"{label} ({name} = '{_short(text)}')")
    if fields.flag("enable_noise_multiplier_scheduling") and not _same_schedule(
            fields, "noise_multiplier_schedule", fields.text_value("noise_multiplier_schedule"),
            "0: (1.0)", frames, seed):
        report.warn("noise and contrast", "noise multiplier (noise_multiplier_schedule = "
                    f"'{_short(fields.text_value('noise_multiplier_schedule'))}')")
    shake = fields.text_value("shake_name", "None")
    if shake not in ("None", "") and fields.number("shake_intensity", 1.0) > 0:
        report.warn("camera shake", f"shake '{shake}' (intensity "
                    f"{fields.number('shake_intensity', 1.0):g}): add a `camera:` wobble by hand")
    border = fields.text_value("border", "replicate")
    if border not in ("replicate", "smear"):
        report.warn("look", f"border '{border}' (kandanim fills new border by inpainting)")
    for name, default in (("near_schedule", "0: (200)"), ("far_schedule", "0: (10000)")):
        if name in fields.data and _differs(fields.data[name], default):
            report.note(f"{name} ignored (it has no effect in Deforum's warp)")
    for name, default in (("padding_mode", "border"), ("sampling_mode", "bicubic")):
        if name in fields.data and _differs(fields.data[name], default):
            report.note(f"{name} '{fields.data[name]}' not used: kandanim warps with its own "
                        "sampling and fills uncovered pixels")
    depth_model = fields.text_value("depth_algorithm", "")
    if depth_model and fields.flag("use_depth_warping", True):
        report.note(f"depth_algorithm '{depth_model}' → kandanim's depth model (midas by default)")
    sd = [name for name in SD_ONLY if name in fields.data]
    if sd:
        report.note("Stable Diffusion sampling settings not carried over (Kandinsky keeps its "
                    f"own steps and guidance): {', '.join(sd)}")


def _differs(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return _truthy(value) != default
    return str(value).strip() != str(default)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _same_schedule(fields: _Fields, name: str, text: str, default: str, frames: int,
                   seed: float) -> bool:
    def values(schedule_text: str) -> np.ndarray:
        return parse_schedule(schedule_text, name, max_frames=frames, seed=seed).values(frames, seed)

    try:
        return bool(np.allclose(values(text), values(default)))
    except ScheduleError as error:
        raise fields.schedule_error(error) from None


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

