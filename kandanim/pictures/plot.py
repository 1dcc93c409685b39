"""Camera-path plots of a plan (`kandanim plan --plot`, `kandanim effects NAME --plot`).

Two steps, so tests can check what is drawn without looking at pixels:

* `plot_data(plan)` collects every array the picture shows (`PlotData`): the six pose
  channels per frame, strength, the diffused frames, scene bands, transition windows, the
  camera path and a frustum every second.
* `plan_figure(data)` hands those arrays to matplotlib. It builds a bare `Figure` (no
  pyplot, so no GUI backend and no global state) and `save_figure` writes PNG or SVG
  through Agg.

Colours are the Okabe–Ito palette, which stays distinct under the common colour-vision
deficiencies. No torch import anywhere on this path.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kandanim.errors import RuntimeFailure, UserError
from kandanim.plan import Plan
from kandanim.presets import Catalogue
from kandanim.trajectory import AXES, ResolvedKey

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_SUFFIXES = (".png", ".svg")
FIGURE_INCHES = (16.0, 10.0)
DPI = 110  # 16 in × 110 = 1760 px wide
TITLE_CHARS = 140  # longer titles wrap
UNITS = {"x": "units", "y": "units", "z": "units", "yaw": "°", "pitch": "°", "roll": "°"}
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000")
CHANNEL_COLOURS = dict(zip(AXES, OKABE_ITO, strict=False))
SCENE_COLOURS = OKABE_ITO  # path and scene labels cycle through these
BAND_SHADES = ("#f2f2f2", "#ffffff")
TRANSITION_SHADE = "#9e9e9e"
FRUSTUM_FRACTION = 0.07  # frustum depth as a fraction of the path's extent
MIN_FRUSTUM = 0.05  # scene units: a camera that hardly moves still shows its frustums
VIEWS = {  # (horizontal, vertical) channel indices → title and axis labels
    (0, 2): ("top view", "x (units)", "z (units)"),
    (2, 1): ("side view", "z (units)", "y (units)"),
}
VIEW_MARGIN = 0.06  # of the span, on each side
MIN_SPAN = {"units": 0.2, "°": 2.0}  # smallest y range of a channel panel
MANY_FRUSTUMS = 60  # beyond this they are drawn thinner and lighter
MAX_FRAME_TICKS = 600  # more frames than this and the cadence strip shows shares per scene
MAX_SCENE_LINES = 40  # cut lines drawn up to this many scenes
MAX_LEGEND_SCENES = 8  # scenes named in the path views' legends


@dataclass(frozen=True)
class Band:
    """A span of the timeline in seconds: a scene or a transition window."""

    start: float
    stop: float
    label: str
    scene: int


@dataclass(frozen=True)
class PlotData:
    """Everything the figure draws. N frames, F frustums, K keyframes."""

    title: str
    fps: int
    t: np.ndarray  # (N,) seconds from the start of the video
    channels: np.ndarray  # (N, 6) x, y, z (units), yaw, pitch, roll (degrees), in AXES order
    strength: np.ndarray  # (N,)
    diffused: np.ndarray  # (N,) bool: frame is diffused under cadence
    scene_of: np.ndarray  # (N,) scene index of each frame
    scenes: tuple[Band, ...]
    transitions: tuple[Band, ...]
    frustum_frames: np.ndarray  # (F,) frame indices, one per second
    frustums: np.ndarray  # (F, 8, 2, 3) segments in user world coordinates (x right, y up)
    key_t: np.ndarray | None = None  # (K,) keyframe times, seconds
    key_values: np.ndarray | None = None  # (K, 6) keyframe values, AXES order

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) camera centres: x, y, z."""
        return self.channels[:, :3]


# --------------------------------------------------------------------------- data


def plot_data(plan: Plan, keys: Sequence[ResolvedKey] | None = None) -> PlotData:
    """The arrays `plan_figure` draws, taken straight from `plan` (and effect keyframes).

    Raises UserError for a plan without frames.
    """
    if not plan.frames:
        raise UserError("the plan has no frames to plot")
    frames = plan.frames
    t = np.array([f.t for f in frames])
    channels = np.array([[getattr(f.pose, axis) for axis in AXES] for f in frames])
    every_second = np.arange(0, len(frames), plan.fps)
    size = frustum_size(channels[every_second, :3])
    aspect = plan.width / plan.height
    frustums = np.array(
        [frustum_segments(channels[i], frames[i].fov, aspect, size) for i in every_second]
    )
    key_t = key_values = None
    if keys is not None:
        key_t = np.array([k.t for k in keys])
        key_values = np.array([k.values for k in keys])
    return PlotData(
        title=_title(plan),
        fps=plan.fps,
        t=t,
        channels=channels,
        strength=np.array([f.strength for f in frames]),
        diffused=np.array([f.diffuse for f in frames]),
        scene_of=np.array([f.scene for f in frames]),
        scenes=tuple(_scene_band(plan, i) for i in range(len(plan.scenes))),
        transitions=_transition_bands(plan),
        frustum_frames=every_second,
        frustums=frustums,
        key_t=key_t,
        key_values=key_values,
    )


def _title(plan: Plan) -> str:
    seconds = plan.frame_count / plan.fps
    head = f"{plan.title} — " if plan.title else ""
    return (
        f"{head}{len(plan.scenes)} scene{'s' if len(plan.scenes) != 1 else ''}, "
        f"{plan.frame_count} frames, {seconds:g} s at {plan.fps} fps, {plan.width}×{plan.height}"
    )


def _scene_band(plan: Plan, index: int) -> Band:
    scene = plan.scenes[index]
    effect = scene.effect or ("camera" if scene.custom_camera else "static")
    if scene.effect and scene.custom_camera:
        effect += " + camera"
    cadence = f", cadence {scene.cadence}" if scene.cadence > 1 else ""
    return Band(
        scene.start / plan.fps, scene.stop / plan.fps, f"{index + 1} {effect}{cadence}", index
    )


def _transition_bands(plan: Plan) -> tuple[Band, ...]:
    """One band per transition window: the frames that blend scene k-1 into k."""
    windows: dict[int, list[int]] = {}
    for frame in plan.frames:
        if frame.blend_to is not None:
            windows.setdefault(frame.blend_to, []).append(frame.index)
    return tuple(
        Band(
            min(indices) / plan.fps,
            (max(indices) + 1) / plan.fps,
            plan.scenes[k].transition_in,
            k,
        )
        for k, indices in sorted(windows.items())
    )


def frustum_size(centres: np.ndarray) -> float:
    """Depth of the drawn frustums in scene units, from the (F, 3) centres they sit at.

    A small part of the path's extent, but no longer than the typical step between two
    frustums, so a long path's frustums do not pile up; never below MIN_FRUSTUM, so a
    camera that only turns still shows where it looks.
    """
    if len(centres) < 2:
        return MIN_FRUSTUM
    extent = float(np.ptp(centres, axis=0).max())
    step = float(np.median(np.linalg.norm(np.diff(centres, axis=0), axis=1)))
    return max(min(FRUSTUM_FRACTION * extent, 0.9 * step), MIN_FRUSTUM)


def frustum_segments(pose: np.ndarray, fov: float, aspect: float, size: float) -> np.ndarray:
    """The 8 edges of a camera's view pyramid, (8, 2, 3), in user world coordinates.

    `pose` is (x, y, z, yaw, pitch, roll) in the user convention; `fov` the vertical field
    of view in degrees; `aspect` width / height; `size` the pyramid's depth in scene units.
    Four edges run from the camera centre to the corners of the image rectangle at
    distance `size`, four join the corners.
    """
    from kandanim.camera import rotation_from_angles

    half_h = math.tan(math.radians(fov) / 2.0) * size
    half_w = half_h * aspect
    # corners in the camera frame, OpenCV axes (y down), clockwise from top-left
    corners_cam = np.array(
        [[-half_w, -half_h, size], [half_w, -half_h, size], [half_w, half_h, size],
         [-half_w, half_h, size]]
    )
    flip = np.array([1.0, -1.0, 1.0])  # OpenCV (y down) ↔ user (y up), as in camera.py
    rotation = rotation_from_angles(*pose[3:6])
    corners = (corners_cam @ rotation.T) * flip + pose[:3]
    centre = np.asarray(pose[:3], dtype=np.float64)
    edges = [(centre, c) for c in corners]
    edges += [(corners[i], corners[(i + 1) % 4]) for i in range(4)]
    return np.array(edges)


# --------------------------------------------------------------------------- drawing


def check_plot_path(path: Path) -> Path:
    """`path` if it names a PNG or SVG in a folder that exists; UserError otherwise."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(
            f"--plot {path}: a plot is written as .png or .svg, not "
            f"{repr(path.suffix) if path.suffix else 'a name without a suffix'}",
            hint=f"for example --plot {path.with_suffix('.png').name}",
        )
    if not path.parent.is_dir():
        raise UserError(
            f"--plot {path}: the folder {path.parent} does not exist",
            hint="create it first, or pick a file in an existing folder",
        )
    if path.is_dir():
        raise UserError(f"--plot {path}: that is a folder", hint="name a .png or .svg file")
    return path


def plan_figure(data: PlotData) -> Figure:
    """The figure: pose channels, strength and cadence over time; top and side views."""
    from matplotlib.figure import Figure

    # a fixed layout: the figure's size never changes, and constrained layout would cost
    # a third of the drawing time of a long plan
    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    title = textwrap.fill(data.title, TITLE_CHARS)
    figure.suptitle(title, fontsize=14, fontweight="bold", y=0.99, va="top")
    outer = figure.add_gridspec(
        1, 2, width_ratios=(1.55, 1), left=0.085, right=0.99, bottom=0.06,
        top=0.925 - 0.027 * title.count("\n"), wspace=0.14,
    )
    left = outer[0].subgridspec(
        8, 1, height_ratios=(1, 1, 1, 1, 1, 1, 1.1, 0.35), hspace=0.28
    )
    time_axes: list[Axes] = []
    for row, axis in enumerate(AXES):
        ax = figure.add_subplot(left[row], sharex=time_axes[0] if time_axes else None)
        _draw_channel(ax, data, row, axis)
        time_axes.append(ax)
    strength_ax = figure.add_subplot(left[6], sharex=time_axes[0])
    _draw_strength(strength_ax, data)
    diffuse_ax = figure.add_subplot(left[7], sharex=time_axes[0])
    _draw_diffused(diffuse_ax, data)
    time_axes += [strength_ax, diffuse_ax]
    for ax in time_axes:
        _draw_bands(ax, data)
        ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    for ax in time_axes[:-1]:
        ax.tick_params(labelbottom=False)
    diffuse_ax.set_xlabel("time (s)")
    time_axes[0].set_xlim(0.0, len(data.t) / data.fps)
    _label_scenes(time_axes[0], data)
    right = outer[1].subgridspec(2, 1, hspace=0.22)
    span = view_span(data, VIEWS)
    for row, (dims, (title, xlabel, ylabel)) in enumerate(VIEWS.items()):
        _draw_view(figure.add_subplot(right[row]), data, dims, title, xlabel, ylabel, span)
    return figure


def view_span(data: PlotData, views: dict[tuple[int, int], tuple[str, str, str]]) -> float:
    """One side length (scene units) for every path view, so they share one scale."""
    span = 0.0
    for a, b in views:
        points = np.concatenate(
            [data.channels[:, [a, b]], data.frustums[:, :, :, [a, b]].reshape(-1, 2)]
        )
        span = max(span, float(np.ptp(points, axis=0).max()))
    return span * (1.0 + 2 * VIEW_MARGIN)


def _draw_channel(ax: Axes, data: PlotData, row: int, axis: str) -> None:
    colour = CHANNEL_COLOURS[axis]
    ax.plot(data.t, data.channels[:, row], color=colour, linewidth=1.6, gid=f"channel-{axis}")
    if data.key_t is not None and data.key_values is not None:
        ax.plot(
            data.key_t, data.key_values[:, row], linestyle="none", marker="D", markersize=6,
            markerfacecolor="white", markeredgecolor="black", gid=f"keys-{axis}",
        )
    ax.set_ylabel(f"{axis} ({UNITS[axis]})", rotation=0, ha="right", va="center")
    values = data.channels[:, row]
    if data.key_values is not None:
        values = np.concatenate([values, data.key_values[:, row]])
    low, high = float(values.min()), float(values.max())
    least = MIN_SPAN[UNITS[axis]]
    if high - low < least:  # do not blow rounding noise up into a curve
        centre = (low + high) / 2
        ax.set_ylim(centre - least / 2, centre + least / 2)


def _draw_strength(ax: Axes, data: PlotData) -> None:
    ax.step(data.t, data.strength, where="post", color="#000000", linewidth=1.4, gid="strength")
    top = max(float(data.strength.max()) * 1.25, 0.05)
    ax.set_ylim(0.0, top)
    ax.set_ylabel("strength", rotation=0, ha="right", va="center")


def _draw_diffused(ax: Axes, data: PlotData) -> None:
    """Which frames are diffused under cadence (the rest are warped between them).

    A tick per diffused frame while ticks can be told apart; on a long plan, a bar per
    scene whose height is the share of its frames that are diffused.
    """
    if len(data.t) <= MAX_FRAME_TICKS:
        ax.vlines(data.t[data.diffused], 0.0, 1.0, color="#0072B2", linewidth=0.8, gid="diffused")
        ax.set_ylabel("diffused", rotation=0, ha="right", va="center")
    else:
        starts = np.array([b.start for b in data.scenes])
        widths = np.array([b.stop - b.start for b in data.scenes])
        ax.bar(
            starts, diffused_share(data), width=widths, align="edge", color="#0072B2",
            gid="diffused-share",
        )
        ax.set_ylabel("diffused\n(share)", rotation=0, ha="right", va="center")
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([])


def diffused_share(data: PlotData) -> np.ndarray:
    """(S,) fraction of each scene's frames that are diffused."""
    return np.array([data.diffused[data.scene_of == b.scene].mean() for b in data.scenes])


def _draw_bands(ax: Axes, data: PlotData) -> None:
    """Scenes as alternating shades, transition windows hatched over them."""
    from matplotlib.collections import PolyCollection

    transform = ax.get_xaxis_transform()  # x in seconds, y from 0 to 1 of the axes
    scenes = [_band_polygon(b) for b in data.scenes]
    shades = [BAND_SHADES[b.scene % 2] for b in data.scenes]
    ax.add_collection(
        PolyCollection(scenes, facecolors=shades, edgecolors="none", transform=transform,
                       zorder=-2, gid="scene-bands")
    )
    if data.transitions:
        few = len(data.transitions) <= MAX_SCENE_LINES  # hatching hundreds is slow and busy
        ax.add_collection(
            PolyCollection(
                [_band_polygon(b) for b in data.transitions], facecolors=TRANSITION_SHADE,
                alpha=0.28, edgecolors="none", transform=transform, zorder=-1,
                gid="transition-bands", hatch="//" if few else None,
            )
        )
    if len(data.scenes) <= MAX_SCENE_LINES:  # beyond that the lines would hide the curves
        cuts = [band.start for band in data.scenes[1:]]
        ax.vlines(cuts, 0.0, 1.0, transform=transform, colors="#888888", linewidths=0.6,
                  zorder=-1)


def _band_polygon(band: Band) -> list[tuple[float, float]]:
    return [(band.start, 0.0), (band.stop, 0.0), (band.stop, 1.0), (band.start, 1.0)]


def _label_scenes(ax: Axes, data: PlotData) -> None:
    """Scene labels above the first panel, shortened or left out where a band is narrow."""
    total = len(data.t) / data.fps
    width_px = FIGURE_INCHES[0] * DPI * 0.55  # the time panels' share of the figure
    for band in data.scenes:
        room = (band.stop - band.start) / total * width_px
        label = band.label if room >= 7.5 * len(band.label) else str(band.scene + 1)
        if room < 7.5 * len(label) + 4:
            continue
        ax.text(
            (band.start + band.stop) / 2, 1.04, label, transform=ax.get_xaxis_transform(),
            ha="center", va="bottom", fontsize=10, fontweight="bold",
            color=SCENE_COLOURS[band.scene % len(SCENE_COLOURS)],
        )


def _draw_view(
    ax: Axes, data: PlotData, dims: tuple[int, int], title: str, xlabel: str, ylabel: str,
    span: float,
) -> None:
    """The path projected on two axes (x–z from above, z–y from the side), per scene."""
    from matplotlib.lines import Line2D

    a, b = dims
    for scene in data.scenes:  # one line per scene (a path per segment is 100× slower)
        chosen = scene_path(data, scene.scene)
        ax.plot(
            data.channels[chosen, a], data.channels[chosen, b], linewidth=2.0,
            color=SCENE_COLOURS[scene.scene % len(SCENE_COLOURS)], gid=f"path-{scene.scene}",
        )
    many = len(data.frustums) > MANY_FRUSTUMS
    frustums = data.frustums[:, :, :, [a, b]].reshape(-1, 2, 2)
    ax.plot(
        *broken_line(frustums).T, color="#555555", linewidth=0.5 if many else 0.7,
        alpha=0.5 if many else 1.0, gid="frustums",
    )
    start, end = data.channels[0], data.channels[-1]
    ax.plot(start[a], start[b], marker="o", color="black", markersize=7, linestyle="none",
            label="start")
    ax.plot(end[a], end[b], marker="s", color="black", markersize=7, linestyle="none",
            markerfacecolor="white", label="end")
    points = np.concatenate([data.channels[:, [a, b]], frustums.reshape(-1, 2)])
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    ax.set_xlim(centre[0] - span / 2, centre[0] + span / 2)
    ax.set_ylim(centre[1] - span / 2, centre[1] + span / 2)
    ax.set_aspect("equal", adjustable="box")  # equal spans: a square box ...
    ax.set_anchor("W")  # ... on the left of its cell, the legend to its right
    ax.set_title(f"{title} (frustum every second)", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e4e4e4", linewidth=0.6)
    handles = [line for line in ax.get_lines() if line.get_label() in ("start", "end")]
    if len(data.scenes) <= MAX_LEGEND_SCENES:
        handles = [
            Line2D([], [], color=SCENE_COLOURS[b.scene % len(SCENE_COLOURS)], linewidth=2.0,
                   label=b.label.split(",")[0])  # without the cadence: the legend is narrow
            for b in data.scenes
        ] + handles
    if dims == next(iter(VIEWS)):  # one legend, beside the first view, clear of the path
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9,
                  frameon=False, borderaxespad=0.0)


def scene_path(data: PlotData, scene: int) -> np.ndarray:
    """Frame indices of a scene's stretch of path, plus the next scene's first frame so
    consecutive stretches join."""
    chosen = np.flatnonzero(data.scene_of == scene)
    if len(chosen) and chosen[-1] + 1 < len(data.t):
        chosen = np.append(chosen, chosen[-1] + 1)
    return chosen


def broken_line(segments: np.ndarray) -> np.ndarray:
    """(S, 2, 2) segments as one (3S, 2) polyline with a NaN break after each segment:
    one path to draw instead of S."""
    gaps = np.full((len(segments), 1, 2), np.nan)
    return np.concatenate([segments, gaps], axis=1).reshape(-1, 2)


def save_figure(figure: Figure, path: Path) -> Path:
    """Write the figure as PNG or SVG (by suffix) through Agg; RuntimeFailure on I/O errors."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # an explicit off-screen canvas: never a display
    fmt = path.suffix.lower().lstrip(".")
    # no date and fixed SVG ids: the same plan gives the same file (diffable docs/)
    metadata = {"Date": None} if fmt == "svg" else {}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "kandanim"}):
            figure.savefig(path, format=fmt, dpi=DPI, metadata=metadata)
    except OSError as error:
        raise RuntimeFailure(f"cannot write {path}: {error.strerror or error}") from None
    return path


def write_plot(plan: Plan, path: Path, keys: Sequence[ResolvedKey] | None = None) -> Path:
    """Draw `plan` (with an effect's `keys`, if given) to `path` (.png or .svg)."""
    check_plot_path(path)
    return save_figure(plan_figure(plot_data(plan, keys)), path)


def write_effect_plot(
    catalogue: Catalogue, name: str, path: Path, extra_presets: Sequence[Path] = ()
) -> Path:
    """Draw one effect (by name or alias) over the time it is shown for, with its keyframes.

    Raises UserError for an unknown effect (with a suggestion) or a bad path.
    """
    from kandanim.pictures.effect_plans import effect_keys, effect_plan, find_effect, show_seconds

    check_plot_path(path)
    preset = find_effect(catalogue, name)
    seconds = show_seconds(preset)
    plan = effect_plan(preset, duration=seconds, extra_presets=extra_presets)
    return write_plot(plan, path, effect_keys(preset, seconds))
