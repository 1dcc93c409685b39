"""`Animation` → screenplay YAML text, with comments saying what was converted and how.

Scenes start at the prompt keys (durations in seconds, frames kept exactly: a scene of n
frames lasts n/fps). The camera is one continuous path: each scene's `camera:` keys are
the integrated Deforum motion relative to where that scene starts, simplified to few keys
(`motion.simplify`), with a last key on the next scene's first frame so the path joins.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kandanim import spec
from kandanim.importers.animation import Animation, Prompt, Report
from kandanim.importers.motion import (
    DEPTH_FAR,
    DEPTH_NEAR,
    MOTION_TOLERANCE_PX,
    POSITION_TOLERANCE_PX,
    Probe,
    deltas_2d,
    deltas_3d,
    integrate,
    sideways_factor,
    simplify,
    user_keys,
)
from kandanim.trajectory import Rigid

FLAT_FOV = 40.0  # 2D imports: any fov gives the same picture motion over a flat picture
STRENGTH_TOLERANCE = 0.005
PLACEHOLDER_PROMPT = "describe this scene"
AXES = ("x", "y", "z", "yaw", "pitch", "roll")


@dataclass(frozen=True)
class SceneSpan:
    start: int
    stop: int  # exclusive
    prompt: Prompt


def render_size(animation: Animation) -> tuple[tuple[int, int], str | None]:
    """The size kandanim renders and a note when it differs from the source's."""
    if animation.size is None:
        return spec.RESOLUTION_PRESETS["square"], "the source has no frame size: square 640x640"
    width, height = animation.size
    chosen = (_nearest_side(width), _nearest_side(height))
    if chosen == (width, height):
        return chosen, None
    return chosen, (f"size {width}x{height} → {chosen[0]}x{chosen[1]} (kandanim renders sides "
                    f"in multiples of {spec.SIDE_MULTIPLE})")


def _nearest_side(side: int) -> int:
    rounded = round(side / spec.SIDE_MULTIPLE) * spec.SIDE_MULTIPLE
    return min(max(rounded, spec.SIDE_MIN), spec.SIDE_MAX)


def scene_spans(animation: Animation) -> list[SceneSpan]:
    """One span per prompt key; a key's prompt holds until the next (consecutive equal
    prompts are one scene)."""
    merged: list[Prompt] = []
    for prompt in animation.prompts:
        if merged and (merged[-1].positive, merged[-1].negative) == (prompt.positive, prompt.negative):
            continue
        merged.append(prompt)
    starts = [0] + [p.frame for p in merged[1:]]
    stops = starts[1:] + [animation.frames]
    return [SceneSpan(a, b, p) for a, b, p in zip(starts, stops, merged) if b > a]


def camera_poses(animation: Animation, size: tuple[int, int], match: str) -> list[Rigid]:
    if animation.mode == "3D":
        deltas = deltas_3d(animation, sideways_factor(animation, size, match))
    else:
        deltas = deltas_2d(animation, size, FLAT_FOV, match)
    return integrate(deltas)


def write_screenplay(animation: Animation, *, source: str, match: str) -> str:
    """The screenplay text (YAML with leading comments)."""
    report = animation.report
    size, size_note = render_size(animation)
    if size_note:
        report.note(size_note)
    poses = camera_poses(animation, size, match)
    spans = scene_spans(animation)
    scenes, key_count = [], 0
    depths = (DEPTH_NEAR, DEPTH_FAR) if animation.depth_warping else (DEPTH_NEAR,)
    for index, span in enumerate(spans):
        last = index == len(spans) - 1
        fov = _scene_fov(animation, span, report)
        camera = _scene_camera(poses, span, last, animation.fps, Probe(size, fov, depths))
        key_count += len(camera)
        scenes.append(_scene(animation, span, camera, fov, report))
    _motion_notes(animation, size, match, key_count, report)
    data = _document(animation, size, scenes)
    return _header(animation, source, len(spans)) + _yaml(data)


def _scene_fov(animation: Animation, span: SceneSpan, report: Report) -> float:
    if animation.mode == "2D":
        return FLAT_FOV
    fov = animation.fov[span.start:span.stop]
    if np.ptp(fov) > 1e-6:
        report.warn("camera", f"fov_schedule changes within frames {span.start}…{span.stop - 1} "
                    f"({fov.min():g}…{fov.max():g}°): kandanim keeps {fov[0]:g}° per scene")
    return float(min(max(fov[0], 5.01), 149.99))


def _scene_camera(poses: Sequence[Rigid], span: SceneSpan, last: bool, fps: int,
                  probe: Probe) -> list[dict[str, Any]]:
    end = span.stop - 1 if last else span.stop  # the next scene's first frame joins the path
    origin = poses[span.start].inverse()
    relative = [origin.compose(p) for p in poses[span.start:end + 1]]
    keys = user_keys(relative, fps)
    if all(_at_rest(k) for k in keys):
        return [{"t": 0.0}]
    chosen = simplify(relative, fps, probe)
    camera: list[dict[str, Any]] = []
    held = dict.fromkeys(AXES, 0.0)
    for i, easing in chosen:
        key = keys[i]
        entry: dict[str, Any] = {"t": _round(key.t, 9)}  # frame times stay exact enough
        for axis in AXES:
            value = _round(getattr(key, axis), 6 if axis in ("x", "y", "z") else 4)
            if value != held[axis]:  # a field left out holds the previous key's value
                entry[axis] = held[axis] = value
        if easing != "linear":
            entry["ease"] = easing
        camera.append(entry)
    return camera


def _at_rest(key: Any) -> bool:
    return all(abs(getattr(key, axis)) < 1e-9 for axis in AXES)


def _scene(animation: Animation, span: SceneSpan, camera: list[dict[str, Any]], fov: float,
           report: Report) -> dict[str, Any]:
    prompt, removed = plain_prompt(span.prompt.positive)
    negative, removed_negative = plain_prompt(span.prompt.negative)
    if removed or removed_negative:
        report.warn("prompt syntax", "Stable Diffusion prompt syntax means nothing to Kandinsky "
                    f"and was removed: {', '.join(dict.fromkeys(removed + removed_negative))}")
    if not prompt:
        report.warn("prompts", f"the prompt at frame {span.start} is empty: the screenplay says "
                    f"'{PLACEHOLDER_PROMPT}' — edit it before rendering")
        prompt = PLACEHOLDER_PROMPT
    scene: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": negative,
        "duration": _round((span.stop - span.start) / animation.fps, 6),
        "camera": camera,
    }
    if animation.mode == "3D":
        scene["fov"] = _round(fov, 4)
    strength = animation.strength
    if np.ptp(strength) > 1e-9:  # constant strength goes into defaults
        scene["strength"] = _strength_keys(strength[span.start:span.stop], animation.fps)
    return scene


_TAG = re.compile(r"<(?:lora|lyco|hypernet|embedding):[^>]*>", re.IGNORECASE)
_WEIGHT = re.compile(r"\(([^()]*?):\s*-?\d+(?:\.\d+)?\)")
_BACKTICK = re.compile(r"`[^`]*`")


def plain_prompt(text: str) -> tuple[str, list[str]]:
    """A prompt without A1111/Deforum syntax: LoRA tags, `(word:1.3)` weights, backtick
    weight expressions and emphasis parentheses. Returns the text and what was removed."""
    removed: list[str] = []
    for pattern, label, replacement in ((_TAG, "LoRA/embedding tags", ""),
                                        (_BACKTICK, "`weight` expressions", ""),
                                        (_WEIGHT, "(word:weight) weights", r"\1")):
        text, count = pattern.subn(replacement, text)
        if count:
            removed.append(label)
    if re.search(r"\(\(|\)\)|\[\[|\]\]", text):  # ((emphasis)): brackets carry no meaning here
        text = re.sub(r"[()\[\]]{2,}", "", text)
        removed.append("((emphasis)) brackets")
    text = re.sub(r"\s+,", ",", re.sub(r"\s{2,}", " ", text)).strip().strip(",").strip()
    return text, removed


def _strength_keys(values: np.ndarray, fps: int) -> float | list[dict[str, float]]:
    if np.ptp(values) <= STRENGTH_TOLERANCE:
        return _round(float(np.mean(values)), 4)
    kept = _simplify_line(values, STRENGTH_TOLERANCE)
    return [{"t": _round(i / fps, 6), "value": _round(float(values[i]), 4)} for i in kept]


def _simplify_line(values: np.ndarray, tolerance: float) -> list[int]:
    """Indices of a polyline through `values` that stays within `tolerance` (Douglas–Peucker)."""
    kept = {0, len(values) - 1}
    pending = [(0, len(values) - 1)]
    while pending:
        i, j = pending.pop()
        if j - i < 2:
            continue
        line = np.interp(np.arange(i, j + 1), [i, j], [values[i], values[j]])
        error = np.abs(values[i:j + 1] - line)
        worst = int(np.argmax(error))
        if error[worst] > tolerance:
            kept.add(i + worst)
            pending += [(i, i + worst), (i + worst, j)]
    return sorted(kept)


def _motion_notes(animation: Animation, size: tuple[int, int], match: str, keys: int,
                  report: Report) -> None:
    width, height = size
    if animation.mode == "3D":
        report.note("3D motion: per-frame deltas of frames 1…N−1 integrated into absolute camera "
                    "keys (translation/200 scene units, dolly /tan(fov/2), rotations in degrees; "
                    f"Deforum's signs are kandanim's); depth range near {DEPTH_NEAR:g}, far "
                    f"{DEPTH_FAR:g} like Deforum's")
        if not animation.depth_warping:
            report.note("use_depth_warping off → depth: flat")
    else:
        report.note("2D motion: zoom → dolly, angle → roll, translation (pixels, content "
                    "direction) → camera moves over a flat picture (depth: flat), transform "
                    "centre kept")
    factor = sideways_factor(animation, size, match)
    if match == "screen":
        shown = f"×{float(np.median(factor)):.3g}" if animation.mode == "3D" else "in frame widths"
        report.note(f"--match screen: sideways motion {shown} on {width}x{height} to keep the "
                    "on-screen speeds seen in Deforum")
    else:
        report.note("--match geometry: kandanim's square-pixel camera (sideways speeds differ from "
                    "Deforum's on non-square frames)")
    report.note(f"{keys} camera keys in all; between them on-screen motion is within "
                f"{MOTION_TOLERANCE_PX:g} px per frame and positions within "
                f"{POSITION_TOLERANCE_PX:g} px of Deforum's path")


def _document(animation: Animation, size: tuple[int, int], scenes: list[dict[str, Any]]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"cadence": animation.cadence}
    if np.ptp(animation.strength) <= 1e-9:
        defaults["strength"] = _round(float(animation.strength[0]), 4)
    negatives = {s["negative_prompt"] for s in scenes}
    if len(negatives) == 1:
        defaults["negative_prompt"] = negatives.pop()
        for scene in scenes:
            del scene["negative_prompt"]
    if animation.depth_warping:
        defaults["near"], defaults["far"] = DEPTH_NEAR, DEPTH_FAR
    else:
        defaults.update(depth="flat", near=DEPTH_NEAR, far=DEPTH_FAR)
    if animation.mode == "2D":
        defaults["fov"] = FLAT_FOV
    defaults["colour_coherence"] = animation.colour_coherence
    if animation.sharpen:
        defaults["sharpen"] = _round(animation.sharpen, 4)
    document: dict[str, Any] = {"version": 1, "fps": animation.fps,
                                "resolution": f"{size[0]}x{size[1]}"}
    if animation.seed is not None:
        document["seed"] = animation.seed % 2**32
    document["transition"] = {"type": "cut", "duration": 0.0}
    if animation.soundtrack:
        document["audio"] = {"path": animation.soundtrack}
    document["defaults"] = defaults
    if animation.init_image:
        scenes[0] = {**scenes[0], "init_image": animation.init_image}
    document["scenes"] = scenes
    return document


def _header(animation: Animation, source: str, scene_count: int) -> str:
    report = animation.report
    lines = [
        f"# Imported by `kandanim import` from {source}",
        (f"# ({animation.dialect}, {animation.mode} mode): {animation.frames} frames at "
         f"{animation.fps} fps → {scene_count} scene{'s' * (scene_count != 1)} cut at the prompt "
         "keys."),
        "# Conversions:",
        *(f"#   - {note}" for note in report.notes),
    ]
    if report.warnings:
        lines.append("# Not honoured (kandanim has no equivalent; also printed as warnings):")
        lines += [f"#   - {line}" for line in report.warning_lines()]
    else:
        lines.append("# Every setting in the source was carried over or has no effect here.")
    lines.append("# Deforum switches prompts hard (transition: cut); try `dissolve` or `morph`.")
    return "\n".join(_wrap_comment(line) for line in lines) + "\n"


def _wrap_comment(line: str, width: int = 100) -> str:
    if len(line) <= width:
        return line
    indent = "#     "
    words, out, current = line.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = indent + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\n".join(out)


# ---- YAML, laid out for people (camera keys one per line)


def _yaml(value: Any, indent: int = 0) -> str:
    pad = " " * indent
    lines: list[str] = []
    for key, item in value.items():
        if isinstance(item, dict) and key not in ("transition", "audio"):
            lines.append(f"{pad}{key}:")
            lines.append(_yaml(item, indent + 2).rstrip("\n"))
        elif isinstance(item, dict):
            lines.append(f"{pad}{key}: {_flow(item)}")
        elif isinstance(item, list) and item and isinstance(item[0], dict) and key == "scenes":
            lines.append(f"{pad}{key}:")
            for scene in item:
                body = _yaml(scene, indent + 4).rstrip("\n")
                lines.append(pad + "  - " + body[indent + 4:])
        elif isinstance(item, list):
            lines.append(f"{pad}{key}:")
            lines += [f"{pad}  - {_flow(entry)}" for entry in item]
        else:
            lines.append(f"{pad}{key}: {_scalar(item)}")
    return "\n".join(lines) + "\n"


def _flow(mapping: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {_scalar(v)}" for k, v in mapping.items()) + "}"


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a YAML scalar


def _number(value: float) -> str:
    """Plain decimals: YAML 1.1 (PyYAML) reads '9e-06' as text, not as a number."""
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value)}.0" if value else "0"
    text = repr(value)
    if "e" in text or "E" in text:
        text = f"{value:.12f}".rstrip("0")
        text = text + "0" if text.endswith(".") else text
    return text


def _round(value: float, digits: int) -> float:
    rounded = round(float(value), digits)
    return 0.0 if rounded == 0 or math.isclose(rounded, 0.0, abs_tol=10 ** -digits) else rounded
