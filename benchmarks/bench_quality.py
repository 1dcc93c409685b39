"""Picture quality of every effect's preview (issue 8), with `kandanim.tools.picture_metrics`.

Each effect is rendered as `kandanim preview` renders it (a one-scene screenplay, the
preview engine, 4 s at 24 fps, through the library: no subprocess) on

* the built-in procedural scene (landscape),
* scikit-image's `coffee` and `rocket` photos (landscape), and `astronaut` (portrait)
  for the effects whose figures the issue names,

and the first and last frames are compared: detail kept, homography correlation, band
texture ratio at every edge, the rocket's straightness, and for `rotate-360` the centre
of frame 0 found again in the last frames.

    python -m benchmarks quality                 # full size: 832×448 / 448×832
    python -m benchmarks quality --size small    # 256×128 / 128×256, for a quick look
    python -m benchmarks.bench_quality --size small --effects right,orbit-right --table

`--table` prints one line per render instead of benchmark rows. Bars are the issue's.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row
from kandanim.tools import picture_metrics as pm

SIZE_VARIABLE = "KANDANIM_BENCH_SIZE"  # `python -m benchmarks --size small` sets it
SIZES = {"full": {"landscape": (832, 448), "portrait": (448, 832)},
         "small": {"landscape": (256, 128), "portrait": (128, 256)}}
FPS = 24
SECONDS = 4.0
LAST_FRAMES = 6  # "found again in the last frames": rotate-360's last quarter second

EFFECTS = (
    "in-place", "zoom-in", "zoom-out", "left", "right", "up", "down", "turn-left",
    "turn-right", "tilt-up", "tilt-down", "orbit-left", "orbit-right", "spin-cw", "spin-ccw",
    "rotate-360", "dive-in", "look-around",
)
# Which bar of issue 8 applies to which effect.
DETAIL_70 = ("left", "right", "up", "down", "turn-left", "turn-right", "tilt-up", "tilt-down",
             "orbit-left", "orbit-right", "zoom-out")  # pans, turns, orbits, pull-backs
DETAIL_90 = ("in-place",)
HOMOGRAPHY_BAR = ("left", "right", "up", "down", "turn-left", "turn-right", "tilt-up",
                  "tilt-down", "orbit-left", "orbit-right")  # pan, orbit, pedestal (photos)
BAND_BAR = ("left", "right", "up", "down", "zoom-out")  # trucks and the pull-back
STRAIGHT_BAR = ("left", "right", "orbit-left", "orbit-right")  # truck or orbit, rocket
ROCKET_EFFECTS = ("in-place", "left", "right", "orbit-left", "orbit-right", "turn-left",
                  "look-around")
PORTRAIT_EFFECTS = ("in-place", "up", "down", "orbit-left", "orbit-right")
ROCKET_COLUMN = 0.504  # the rocket's centre line, as a fraction of the frame width (cover crop)
ROCKET_ROWS = (0.27, 0.95)  # its nose to the launch platform, fractions of the height


@dataclass(frozen=True)
class Source:
    """A picture to render from: a scikit-image photo, or None for the built-in scene."""

    name: str
    photo: str | None
    aspect: str
    effects: tuple[str, ...]


SOURCES = (
    Source("scene", None, "landscape", EFFECTS),
    Source("coffee", "coffee", "landscape", EFFECTS),
    Source("rocket", "rocket", "landscape", ROCKET_EFFECTS),
    Source("astronaut", "astronaut", "portrait", PORTRAIT_EFFECTS),
)


@dataclass
class Figures:
    """What one render measures; NaN where a measure does not apply."""

    source: str
    effect: str
    size: tuple[int, int]
    seconds: float  # wall-clock time of the render
    detail: float
    homography: float  # 2–8 px band correlation (picture_metrics.HomographyFit)
    homography_grey: float
    bands: dict[str, float] = field(default_factory=dict)
    straightness: float = math.nan
    straightness_first: float = math.nan
    centre: float = math.nan


# --------------------------------------------------------------------------- rendering


def photo_file(name: str, folder: Path) -> Path:
    """Write scikit-image's photo `name` as a PNG in `folder` (the wheel ships them)."""
    import skimage.data

    path = folder / f"{name}.png"
    if not path.exists():
        picture = getattr(skimage.data, name)()
        cv2.imwrite(str(path), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    return path


def render_frames(
    effect: str, width: int, height: int, image: Path | None, seconds: float = SECONDS,
    depth: str | None = None,
) -> Iterator[np.ndarray]:
    """The frames `kandanim preview --effect EFFECT [--image IMAGE] [--depth DEPTH]`
    renders, streamed."""
    from kandanim.engines.preview import PreviewEngine
    from kandanim.plan import build_plan
    from kandanim.render import Renderer
    from kandanim.screenplay import from_mapping

    scene: dict[str, object] = {"prompt": f"{effect} preview", "effect": effect}
    if image is not None:
        scene["init_image"] = str(image)
    if depth is not None:
        scene["depth"] = depth
    document = {
        "version": 1, "fps": FPS, "resolution": f"{width}x{height}", "seed": 0,
        "engine": "preview", "defaults": {"duration": seconds}, "scenes": [scene],
    }
    plan = build_plan(from_mapping(document, base_dir=Path.cwd()), engine="preview")
    engine = PreviewEngine()
    engine.prepare(plan)
    for _, frame in Renderer(plan, engine).frames():
        yield frame


def measure(source: Source, effect: str, size: str, folder: Path) -> Figures:
    """Render `effect` on `source` and measure first against last frame."""
    width, height = SIZES[size][source.aspect]
    image = photo_file(source.photo, folder) if source.photo else None
    started = time.perf_counter()
    frames = list(render_frames(effect, width, height, image))
    elapsed = time.perf_counter() - started
    first, last = frames[0], frames[-1]
    fit = pm.fit_homography(first, last)
    figures = Figures(
        source.name, effect, (width, height), elapsed,
        detail=pm.detail_kept(first, last),
        homography=fit.correlation,
        homography_grey=fit.grey_correlation,
        bands={edge: pm.band_ratio_kept(first, last, edge) for edge in pm.EDGES},
    )
    if source.photo == "rocket":
        rows = (round(ROCKET_ROWS[0] * height), round(ROCKET_ROWS[1] * height))
        column = ROCKET_COLUMN * width
        figures.straightness = pm.upright_straightness(frames, column, rows=rows)
        figures.straightness_first = pm.upright_straightness(frames[:1], column, rows=rows)
    if effect == "rotate-360":
        figures.centre = pm.centre_found(first, frames[-LAST_FRAMES:])
    return figures


def measure_all(
    size: str, effects: Sequence[str] | None = None, sources: Sequence[str] | None = None,
    report: Callable[[Figures], None] = lambda figures: None,
) -> list[Figures]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for source in SOURCES:
            if sources and source.name not in sources:
                continue
            for effect in source.effects:
                if effects and effect not in effects:
                    continue
                figures = measure(source, effect, size, Path(folder))
                report(figures)
                results.append(figures)
    return results


# --------------------------------------------------------------------------- rows


def rows_for(f: Figures) -> list[Row]:
    """The benchmark rows of one render; a bar applies where issue 8 sets one."""
    label = f"quality {f.source} {f.effect}"
    bands = " ".join(f"{edge[0].upper()} {value:.2f}" for edge, value in f.bands.items())
    size = f"{f.size[0]}×{f.size[1]}, rendered in {f.seconds:.1f} s"
    rows = []
    if f.effect in DETAIL_90:
        bar, ok = "≥ 90 %", f.detail >= 0.9
    elif f.effect in DETAIL_70:
        bar, ok = "≥ 70 %", f.detail >= 0.7
    else:
        bar, ok = "", None
    rows.append(Row(f"{label}: detail kept", 100 * f.detail, "%", bar, ok, size))
    photo = f.source != "scene"
    if photo and f.effect in HOMOGRAPHY_BAR:
        bar, ok = "≥ 0.5", (f.homography >= 0.5)
    else:
        bar, ok = "", None
    note = (
        "NaN: no homography found" if math.isnan(f.homography)
        else f"plain grey correlation {f.homography_grey:.2f}"
    )
    rows.append(Row(f"{label}: homography correlation", f.homography, "NCC 2–8 px", bar, ok,
                    note))
    worst = min(f.bands.values(), key=lambda v: -math.inf if math.isnan(v) else v)
    if f.effect in BAND_BAR:
        bar, ok = "≥ 0.5", worst >= 0.5
    else:
        bar, ok = "", None
    rows.append(Row(f"{label}: band ratio (worst edge)", worst, "× frame 0", bar, ok, bands))
    if not math.isnan(f.straightness) or f.source == "rocket":
        applies = f.effect in STRAIGHT_BAR
        rows.append(Row(
            f"{label}: upright straightness", f.straightness, "px",
            "≤ 4" if applies else "", (f.straightness <= 4) if applies else None,
            f"frame 0: {f.straightness_first:.1f} px",
        ))
    if f.effect == "rotate-360":
        rows.append(Row(f"{label}: centre found in last frames", f.centre, "NCC", "≥ 0.5",
                        f.centre >= 0.5))
    return rows


def _progress(f: Figures) -> None:
    print(f"  {f.source} {f.effect}: {f.seconds:.1f} s", file=sys.stderr)  # the table: stdout


def run(size: str | None = None) -> list[Row]:
    size = size or os.environ.get(SIZE_VARIABLE, "full")
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    rows = [row for figures in measure_all(size, report=_progress) for row in rows_for(figures)]
    return rows


# --------------------------------------------------------------------------- stand-alone


def format_figures(f: Figures) -> str:
    bands = " ".join(f"{edge[0].upper()}{value:5.2f}" for edge, value in f.bands.items())
    extra = ""
    if not math.isnan(f.straightness):
        extra += f"  straight {f.straightness:5.1f} px (frame 0 {f.straightness_first:.1f})"
    if not math.isnan(f.centre):
        extra += f"  centre {f.centre:.2f}"
    return (
        f"{f.source:9s} {f.effect:12s} detail {100 * f.detail:6.1f} %  H-corr {f.homography:5.2f}"
        f" (grey {f.homography_grey:5.2f})"
        f"  bands {bands}{extra}  ({f.seconds:.1f} s)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_quality")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--effects", default="", help="comma-separated (default: all)")
    parser.add_argument("--sources", default="", help="scene,coffee,rocket,astronaut")
    parser.add_argument("--table", action="store_true", help="one line per render")
    args = parser.parse_args(argv)
    effects = [e for e in args.effects.split(",") if e]
    sources = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(effects) - set(EFFECTS)) + sorted(
        set(sources) - {s.name for s in SOURCES}
    )
    if unknown:
        parser.error(f"unknown effect or source: {', '.join(unknown)}")
    report = (lambda f: print(format_figures(f), flush=True)) if args.table else (
        lambda f: None
    )
    results = measure_all(args.size, effects, sources, report)
    if not args.table:
        for figures in results:
            for row in rows_for(figures):
                print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
