"""Deforum work kept outside a settings file: a motion plan as CSV and a prompts file.

* A motion CSV (`mode,parameter,frame,value`, as music-video authors keep Deforum keys in
  a spreadsheet): parameters are Deforum's UI names ("Translation X", "Rotation 3D Y",
  "Zoom", "Transform Center X", …). A file may hold 2D and 3D rows; `mode` picks one (the
  first mode in the file by default). Prompts come from a prompts file beside it
  (`NAME-prompts.json` for `NAME-motion.csv`, or `NAME.json`).
* A prompts file: Deforum's `{"frame": "prompt", …}` object on its own.

Both lack fps, length and size: sd-webui-deforum's defaults (15 fps) are used, the video
runs one typical prompt gap past the last key, and the import says so.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any

from kandanim.errors import UserError
from kandanim.importers.animation import Animation
from kandanim.importers.deforum import MAX_FRAMES, SWD_DEFAULT_FPS, read_settings

CSV_HEADER = ("mode", "parameter", "frame", "value")


def looks_like_motion_csv(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip().lower().replace(" ", "")
    return first == ",".join(CSV_HEADER)


def looks_like_prompts(data: object) -> bool:
    return (isinstance(data, dict) and bool(data)
            and all(isinstance(v, str) for v in data.values())
            and all(re.fullmatch(r"\s*\d+\s*", str(k)) for k in data))


def read_prompts_file(data: dict[str, str], source: str) -> Animation:
    frames = _length([int(k) for k in data], [])
    settings = {"animation_mode": "3D", "max_frames": frames, "fps": SWD_DEFAULT_FPS,
                "prompts": data, "seed": -1}
    animation = read_settings(settings, json.dumps(settings), source)
    animation.dialect = "Deforum prompts file"
    _defaults_note(animation, frames)
    return animation


def read_motion_csv(text: str, path: Path, mode: str | None) -> Animation:
    rows = _rows(text, path)
    modes = list(dict.fromkeys(row[0] for row in rows))
    chosen = (mode or modes[0]).upper()
    if chosen not in modes:
        raise UserError(f"{path}: no {chosen} rows (the file holds {', '.join(modes)})")
    schedules: dict[str, list[tuple[int, float]]] = {}
    for row_mode, field, frame, value in rows:
        if row_mode == chosen:
            schedules.setdefault(field, []).append((frame, value))
    prompts, prompts_path = _sibling_prompts(path)
    prompt_keys = [int(k) for k in prompts] if prompts else []
    frames = _length(prompt_keys, [f for keys in schedules.values() for f, _ in keys])
    settings: dict[str, Any] = {
        "animation_mode": chosen, "max_frames": frames, "fps": SWD_DEFAULT_FPS, "seed": -1,
        "use_depth_warping": True, "prompts": prompts or {"0": ""},
        **{field: ", ".join(f"{f}: ({v!r})" for f, v in keys) for field, keys in schedules.items()},
    }
    animation = read_settings(settings, json.dumps(settings), str(path))
    animation.dialect = "Deforum motion CSV"
    _defaults_note(animation, frames)
    others = [m for m in modes if m != chosen]
    if others:
        animation.report.note(f"the file also holds {', '.join(others)} rows: "
                              f"`--mode {others[0]}` imports those instead")
    if prompts_path is not None:
        animation.report.note(f"prompts from {prompts_path.name}")
    else:
        animation.report.warn("prompts", f"no prompts file beside {path.name} "
                              f"({path.stem.removesuffix('-motion')}-prompts.json)")
    return animation


# Deforum's UI names → settings keys
_FIELDS = {
    "zoom": "zoom", "angle": "angle", "transform center x": "transform_center_x",
    "transform center y": "transform_center_y", "translation x": "translation_x",
    "translation y": "translation_y", "translation z": "translation_z",
    "rotation 3d x": "rotation_3d_x", "rotation 3d y": "rotation_3d_y",
    "rotation 3d z": "rotation_3d_z", "fov": "fov_schedule", "strength": "strength_schedule",
}


def _rows(text: str, path: Path) -> list[tuple[str, str, int, float]]:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    next(reader, None)
    rows = []
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != 4:
            raise UserError(f"{path}:{number}: expected 4 columns ({','.join(CSV_HEADER)}), "
                            f"found {len(row)}")
        mode, parameter, frame, value = (cell.strip() for cell in row)
        field = _FIELDS.get(parameter.lower()) or (parameter if parameter in _FIELDS.values() else None)
        if mode.upper() not in ("2D", "3D"):
            raise UserError(f"{path}:{number}: mode: expected 2D or 3D, found '{mode}'")
        if field is None:
            raise UserError(f"{path}:{number}: parameter: unknown '{parameter}'",
                            hint="expected one of " + ", ".join(k.title() for k in _FIELDS))
        try:
            frame_number, number_value = int(frame), float(value)
        except ValueError:
            raise UserError(f"{path}:{number}: expected a whole frame and a number, found "
                            f"'{frame}', '{value}'") from None
        rows.append((mode.upper(), field, frame_number, number_value))
    if not rows:
        raise UserError(f"{path}: no motion rows under the header")
    return rows


def _sibling_prompts(path: Path) -> tuple[dict[str, str] | None, Path | None]:
    stem = path.stem
    names = [f"{stem.removesuffix('-motion')}-prompts.json", f"{stem.removesuffix('-motion')}.json"]
    for name in names:
        candidate = path.with_name(name)
        try:
            data = json.loads(candidate.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        if looks_like_prompts(data):
            return data, candidate
    return None, None


def _length(prompt_keys: list[int], motion_keys: list[int]) -> int:
    """Frames: one typical prompt gap past the last prompt, and past the last motion key."""
    keys = sorted(set(prompt_keys))
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    gap = sorted(gaps)[len(gaps) // 2] if gaps else SWD_DEFAULT_FPS * 4
    frames = max([k + gap for k in keys[-1:]] + [k + 1 for k in motion_keys] + [1])
    if frames > MAX_FRAMES:
        raise UserError(f"keys reach frame {frames - 1} (at most {MAX_FRAMES - 1})")
    return frames


def _defaults_note(animation: Animation, frames: int) -> None:
    animation.report.note(f"no fps, length or size in the source: {SWD_DEFAULT_FPS} fps "
                          f"(Deforum's default), {frames} frames")
