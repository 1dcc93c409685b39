"""Rich views of the plan and the effect catalogue (`kandanim plan`, `kandanim effects`).

Views build renderables and never print: `cli.py` decides where they go.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich import box
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from kandanim.errors import UserError
from kandanim.plan import Plan, ScenePlan
from kandanim.presets import Catalogue
from kandanim.sources import did_you_mean
from kandanim.spec import Keyframe, Preset
from kandanim.trajectory import AXES, Track, poses_from_rigids, user_values

RATE_WINDOW = 4.0  # seconds over which a rate preset's mean speed is shown
_ANGLES = {"yaw", "pitch", "roll"}
_KEEP_WHOLE = {"#", "frames", "start", "end", "effect", "seed"}  # columns that must never be cut
_SMALLEST = {"units": 0.005, "degrees": 0.05}  # below this a component is not worth showing


# --------------------------------------------------------------------------- the plan


def timecode(frame: int, fps: int) -> str:
    """SMPTE-style hh:mm:ss:ff, ff counting frames within the second, as editors show it.

    A colon, never a dot, before the frames: `00:00:01.27` reads as 1.27 s, not frame 27.
    """
    seconds, frames = divmod(frame, fps)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    width = max(2, len(str(fps - 1)))
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}:{frames:0{width}d}"


def plan_table(plan: Plan) -> RenderableType:
    """Header line plus one row per scene: frames, timecodes, effect, transition, seed."""
    title = escape(plan.title) + " — " if plan.title else ""
    size = f"{plan.width}×{plan.height}"
    if plan.crop is not None:
        size = f"{plan.crop[0]}×{plan.crop[1]} (rendered at {size}, centre-cropped)"
    header = Text.from_markup(
        f"[bold]{title}[/]{size} at {plan.fps} fps, "
        f"{plan.frame_count} frames ({plan.frame_count / plan.fps:.2f} s), "
        f"seed {plan.seed}, engine {plan.engine}; timecodes are hh:mm:ss:frame"
    )
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False,
        collapse_padding=True,
    )
    for column, justify in [
        ("#", "right"), ("frames", "right"), ("start", "left"), ("end", "left"),
        ("effect", "left"), ("enters by", "left"), ("seed", "right"), ("depth", "left"),
    ]:
        table.add_column(column, justify=justify, no_wrap=column in _KEEP_WHOLE)
    prompts = Table(box=None, show_header=False, pad_edge=False)
    prompts.add_column("#", justify="right", no_wrap=True)
    prompts.add_column("prompt", overflow="fold")
    for scene in plan.scenes:
        table.add_row(
            str(scene.index + 1),
            f"{scene.start}–{scene.stop - 1}",
            timecode(scene.start, plan.fps),
            timecode(scene.stop, plan.fps),
            escape(_effect_label(scene)),
            _transition_label(scene, plan.fps),
            str(scene.seed),
            scene.depth,
        )
        prompts.add_row(str(scene.index + 1), escape(scene.prompt))
    return Group(header, table, prompts)


def _effect_label(scene: ScenePlan) -> str:
    if scene.effect and scene.custom_camera:
        return f"{scene.effect} + camera"
    return scene.effect or ("camera" if scene.custom_camera else "static")


def _transition_label(scene: ScenePlan, fps: int) -> str:
    if scene.index == 0:
        return "—"
    if scene.transition_in == "cut" or scene.transition_frames == 0:
        return "cut"
    seconds = scene.transition_frames / fps
    return f"{scene.transition_in} {seconds:g}s"


# --------------------------------------------------------------------------- effects


def effects_table(catalogue: Catalogue) -> RenderableType:
    """One line per effect: name, aliases, motion summary, description."""
    table = Table(show_edge=False, header_style="bold")
    table.add_column("effect", no_wrap=True, style="bold")
    table.add_column("aliases")
    table.add_column("motion")
    table.add_column("description")
    for preset in catalogue.presets():
        table.add_row(
            preset.name,
            escape(", ".join(catalogue.aliases_of(preset.name))),
            motion_summary(preset),
            escape(preset.description),
        )
    return table


def effect_detail(catalogue: Catalogue, name: str) -> RenderableType:
    """One effect in full: description, keyframes, render settings and where it lives."""
    canonical = catalogue.canonical(name)
    if canonical is None:
        raise UserError(
            f"unknown effect '{name}'{did_you_mean(name, catalogue.names())}",
            hint="run `kandanim effects` for the list",
        )
    preset = catalogue.entries[canonical].preset
    aliases = catalogue.aliases_of(canonical)
    lines: list[RenderableType] = [
        Text.from_markup(f"[bold]{escape(preset.name)}[/] — {escape(preset.description)}"),
        Text(f"aliases: {', '.join(aliases) if aliases else 'none'}"),
        Text(f"motion: {motion_summary(preset)}"),
        Text(_span_note(preset)),
        Text(f"file: {catalogue.source(canonical)}", style="dim"),
        keyframes_table(preset.keyframes, span=preset.span),
        _settings_table(preset),
    ]
    return Group(*lines)


def _span_note(preset: Preset) -> str:
    if preset.span == "scene":
        return "span: scene — t is a fraction of the scene (0 = start, 1 = end)"
    return "span: seconds — t in seconds; after the last key the motion goes on at the same rate"


def keyframes_table(keyframes: Sequence[Keyframe], *, span: str = "seconds") -> Table:
    """Keyframes as written: a blank cell holds the previous key's value."""
    table = Table(title="keyframes", title_justify="left", show_edge=False, header_style="bold")
    table.add_column("t" if span == "seconds" else "t (of scene)", justify="right")
    for axis in AXES:
        unit = "°" if axis in _ANGLES else ""
        table.add_column(f"{axis}{unit}", justify="right")
    table.add_column("ease")
    for key in keyframes:
        cells = [f"{key.t:g}"]
        cells += ["" if getattr(key, a) is None else f"{getattr(key, a):g}" for a in AXES]
        table.add_row(*cells, key.ease)
    return table


def _settings_table(preset: Preset) -> RenderableType:
    chosen = {k: v for k, v in preset.settings.model_dump().items() if v is not None}
    if not chosen:
        return Text("settings: built-in defaults")
    table = Table(title="settings", title_justify="left", show_edge=False, header_style="bold")
    table.add_column("setting")
    table.add_column("value")
    for key, value in chosen.items():
        if isinstance(value, list):  # a strength schedule
            value = ", ".join(f"{k['value']:g} at {k['t']:g} s" for k in value)
        table.add_row(key, escape(str(value)))
    return table


def motion_summary(preset: Preset) -> str:
    """What the camera does, in numbers: mean rates per second, or extremes over a scene."""
    track = Track(preset.keyframes, extrapolate=True)
    if preset.span == "seconds":
        values = np.array(user_values(track.at(RATE_WINDOW))) / RATE_WINDOW
        parts = [_component(a, v, "/s") for a, v in zip(AXES, values) if _visible(a, v)]
        # a mean rate, not the first keyframe's move: eased presets start slower
        return f"mean over {RATE_WINDOW:g} s: " + ", ".join(parts) if parts else "none"
    # continuous angles, so a full turn reads 360 and not a wrap from 180 to -180
    poses = poses_from_rigids([track.at(t) for t in np.linspace(0.0, 1.0, 81)])
    samples = np.array([[getattr(p, axis) for axis in AXES] for p in poses])
    parts = []
    for i, axis in enumerate(AXES):
        low, high = float(samples[:, i].min()), float(samples[:, i].max())
        if not (_visible(axis, low) or _visible(axis, high)):
            continue
        if _visible(axis, low) and _visible(axis, high) and low < 0 < high:
            parts.append(_component(axis, max(-low, high), "", both=True))
        else:
            parts.append(_component(axis, high if abs(high) >= abs(low) else low, ""))
    return ("extremes over the scene: " + ", ".join(parts)) if parts else "none"


def _visible(axis: str, value: float) -> bool:
    return abs(value) >= _SMALLEST["degrees" if axis in _ANGLES else "units"]


def _component(axis: str, value: float, per: str, *, both: bool = False) -> str:
    sign = "±" if both else ("+" if value >= 0 else "−")
    if axis in _ANGLES:
        return f"{axis} {sign}{abs(value):.3g}°{per}"
    return f"{axis} {sign}{abs(value):.2g}{per}"
