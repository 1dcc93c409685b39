"""Picture quality of every effect's preview (issue 8), with `kandanim.tools.picture_metrics`.

Each effect is rendered as `kandanim preview` renders it (a one-scene screenplay, the
preview engine, 4 s at 24 fps, through the library: no subprocess) on

* the built-in procedural scene (landscape),
* scikit-image's `coffee` and `rocket` photos (landscape), and `astronaut` (portrait)
  for the effects whose figures the issue names,

and the first and last frames are compared: detail kept, homography correlation, band
texture ratio at every edge, the rocket's straightness, and for `rotate-360` the centre
of frame 0 found again in the last frames. Further rows: the centre seam of a zoom in and
out of a flat texture (item 8), and the kandinsky loop's
resampler (issue 8 item 2): detail kept over a 48-frame warp loop, each frame warped from
the previous one.

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
DETAIL_70 = ("left", "right", "turn-left", "turn-right", "orbit-left", "orbit-right",
             "zoom-out")  # the words: pans, turns, orbits and pull-backs
# Pedestals and tilts have no detail bar: over a ground plane a pedestal magnifies the
# picture (a camera rising over a floor sees it stretch), and a tilt brings another part
# of the picture into the middle; both are one resample of the photo like every frame.
DETAIL_90 = ("in-place",)
# On the built-in world these moves bring other land into the middle (the sky, the near
# ground, the land behind): every frame is drawn from the world itself, never resampled
# from an earlier one, so "detail kept" there measures the scenery, not a loss.
NEW_VIEW = ("turn-left", "turn-right", "tilt-up", "tilt-down", "up", "down")
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
    elif f.effect in DETAIL_70 and not (f.source == "scene" and f.effect in NEW_VIEW):
        bar, ok = "≥ 70 %", f.detail >= 0.7
    else:
        bar, ok = "", None
    if f.source == "scene" and f.effect in NEW_VIEW:
        size += "; the world is drawn afresh from each pose: this is the new view's own detail"
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
    return rows + seam_rows(size) + resampler_rows(size)


# --------------------------------------------------------------------------- seam
#
# Issue 8 item 8: zooming in and out of a flat texture (`depth: flat`) must not grow a
# fixed "+" seam at the optical centre. scikit-image's `gravel` photo, square frames.

SEAM_EFFECTS = ("zoom-in", "zoom-out")
SEAM_STRIDE = 4  # measure every 4th frame


def texture_file(folder: Path) -> Path:
    """scikit-image's grey `gravel` texture as an RGB PNG."""
    import skimage.data

    path = folder / "gravel.png"
    if not path.exists():
        cv2.imwrite(str(path), cv2.cvtColor(skimage.data.gravel(), cv2.COLOR_GRAY2BGR))
    return path


def seam_rows(size: str) -> list[Row]:
    side = 640 if size == "full" else 128
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        image = texture_file(Path(folder))
        for effect in SEAM_EFFECTS:
            frames = render_frames(effect, side, side, image, depth="flat")
            seams = [pm.centre_seam(f) for i, f in enumerate(frames) if i % SEAM_STRIDE == 0]
            worst = int(np.argmax(seams))
            rows.append(Row(
                f"quality gravel {effect} (depth flat): centre seam", seams[worst], "×", "≤ 2",
                seams[worst] <= 2.0,
                f"worst of every {SEAM_STRIDE}th frame, at frame {worst * SEAM_STRIDE}; "
                f"frame 0: {seams[0]:.2f}; {side}×{side}",
            ))
    return rows


# --------------------------------------------------------------------------- resamplers
#
# Issue 8 item 2: the kandinsky loop must start each frame from the previous diffused one,
# so whatever the resampler loses compounds. Here the loop is modelled without diffusion:
# 48 frames, each warped from the previous one by the plan's per-frame move of an effect
# (depth re-estimated on every frame, as the loop does), holes filled classically. The map
# is `kandanim.warp.warp_map`'s; only the sampling of the image through it changes.

LOOP_FRAMES = 48
LOOP_EFFECTS = ("right", "orbit-right", "zoom-in", "spin-cw")
LOOP_DEPTH = 3.0  # scene units: where the effects' orbits pivot
SHARPEN_SIGMA = 1.0  # px: the unsharp mask applied to the source before a cubic sample


def _remap_with(flag: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def sample(image: np.ndarray, map_xy: np.ndarray) -> np.ndarray:
        return cv2.remap(image, map_xy, None, flag, borderMode=cv2.BORDER_REPLICATE)

    return sample


def _sharpened(
    flag: int, amount: float
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Unsharp mask (source + amount·(source − blur)) then sample: makes up for the
    resampler's loss of high frequencies before it happens."""

    def sample(image: np.ndarray, map_xy: np.ndarray) -> np.ndarray:
        blurred = cv2.GaussianBlur(image, (0, 0), SHARPEN_SIGMA)
        sharp = cv2.addWeighted(image, 1.0 + amount, blurred, -amount, 0.0)
        return cv2.remap(sharp, map_xy, None, flag, borderMode=cv2.BORDER_REPLICATE)

    return sample


RESAMPLERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "bilinear": _remap_with(cv2.INTER_LINEAR),
    "bicubic": _remap_with(cv2.INTER_CUBIC),
    "lanczos4": _remap_with(cv2.INTER_LANCZOS4),
    # a fixed pre-sharpen compounds like the blur it offsets: 0.01 keeps 44–105 %
    # depending on the move, 0.02 44–231 %, 0.03 up to 420 % (256×128, measured here)
    "bicubic + unsharp 0.02": _sharpened(cv2.INTER_CUBIC, 0.02),
}


@dataclass(frozen=True)
class LoopFigures:
    effect: str
    resampler: str
    detail: float  # detail kept after LOOP_FRAMES frames of the loop
    one_shot: float  # detail kept by sampling frame 0 once by the whole move (Lanczos)
    error: float  # RMS grey difference from that single sample, central half
    fine_match: float  # NCC of the two frames' Laplacians, central half: right detail?


def _loop_plan(effect: str, width: int, height: int):
    from kandanim.plan import build_plan
    from kandanim.screenplay import from_mapping

    document = {
        "version": 1, "fps": FPS, "resolution": f"{width}x{height}", "seed": 0,
        "engine": "preview", "scenes": [{"prompt": "loop", "effect": effect,
                                          "duration": (LOOP_FRAMES + 1) / FPS}],
    }
    return build_plan(from_mapping(document, base_dir=Path.cwd()), engine="preview")


def resampler_loop(
    first: np.ndarray, effect: str, resampler: str, frames: int = LOOP_FRAMES
) -> LoopFigures:
    """Run the warp loop on `first` with one resampler; detail kept against frame 0.

    The scene is a plane at the effects' pivot distance (`LOOP_DEPTH`): every move is then
    a pure resampling of the picture, with no tears whose fill would add or hide detail,
    and the central half never sees a hole, so the figure is the resampler's alone.
    """
    from kandanim.camera import intrinsics, relative_move
    from kandanim.fill import ClassicalFiller
    from kandanim.warp import warp_map

    height, width = first.shape[:2]
    plan = _loop_plan(effect, width, height)
    sample = RESAMPLERS[resampler]
    filler = ClassicalFiller()
    depth = np.full((height, width), LOOP_DEPTH, np.float32)
    image = first
    for before, after in zip(plan.frames[:frames], plan.frames[1 : frames + 1], strict=True):
        rotation, translation = relative_move(before.pose, after.pose)
        move = warp_map(depth, intrinsics(width, height, after.fov), rotation, translation)
        image = sample(image, move.map_xy)
        if move.holes.any():
            image = filler.fill(image, move.holes)
    # the reference: frame 0 sampled once by the whole move
    rotation, translation = relative_move(plan.frames[0].pose, plan.frames[frames].pose)
    whole = warp_map(depth, intrinsics(width, height, plan.frames[frames].fov),
                     rotation, translation)
    once = RESAMPLERS["lanczos4"](first, whole.map_xy)
    if whole.holes.any():
        once = filler.fill(once, whole.holes)
    a, b = pm.central_half(pm.grey(image)), pm.central_half(pm.grey(once))
    fine = [pm.central_half(cv2.Laplacian(pm.grey(x), cv2.CV_32F)) for x in (image, once)]
    return LoopFigures(
        effect, resampler, pm.detail_kept(first, image), pm.detail_kept(first, once),
        float(np.sqrt(np.mean((a - b) ** 2))), pm.normalised_correlation(*fine),
    )


def remap_seconds(first: np.ndarray) -> dict[str, float]:
    """Median seconds of one sample of `first` through a real map, per resampler."""
    from benchmarks.common import measure_interleaved
    from kandanim.camera import intrinsics, relative_move
    from kandanim.warp import warp_map

    height, width = first.shape[:2]
    plan = _loop_plan("orbit-right", width, height)
    a, b = plan.frames[0], plan.frames[1]
    depth = np.full((height, width), LOOP_DEPTH, np.float32)
    rotation, translation = relative_move(a.pose, b.pose)
    map_xy = warp_map(depth, intrinsics(width, height, b.fov), rotation, translation).map_xy
    calls = {name: (lambda f=f: f(first, map_xy)) for name, f in RESAMPLERS.items()}
    return measure_interleaved(calls, rounds=3, repeats=5)


def resampler_rows(size: str) -> list[Row]:
    """Detail kept over the loop per effect and resampler, and the time of one sample,
    on the coffee photo (832×448 at full size)."""
    width, height = SIZES[size]["landscape"]
    with tempfile.TemporaryDirectory() as folder:
        from kandanim.images import load_image

        first = load_image(photo_file("coffee", Path(folder)), width, height)
    seconds = remap_seconds(first)
    rows = []
    for effect in LOOP_EFFECTS:
        for resampler in RESAMPLERS:
            f = resampler_loop(first, effect, resampler)
            rows.append(Row(
                f"kandinsky loop {effect} ×{LOOP_FRAMES}, {resampler}: detail kept",
                100 * f.detail, "%", "", None,
                f"vs one Lanczos sample by the whole move (keeps {100 * f.one_shot:.0f} %): "
                f"RMS {f.error:.1f} grey levels, fine-detail NCC {f.fine_match:.2f}; coffee "
                f"{width}×{height} as a plane at {LOOP_DEPTH:g} units",
            ))
    for resampler, time_s in seconds.items():
        rows.append(Row(f"resample {width}×{height} RGB, {resampler}", 1000 * time_s, "ms",
                        note="cv2.remap through a warp_map map (+ the unsharp mask)"))
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
    parser.add_argument("--resamplers", action="store_true", help="only the resampler loop")
    parser.add_argument("--seam", action="store_true", help="only the centre-seam check")
    args = parser.parse_args(argv)
    effects = [e for e in args.effects.split(",") if e]
    sources = [s for s in args.sources.split(",") if s]
    unknown = sorted(set(effects) - set(EFFECTS)) + sorted(
        set(sources) - {s.name for s in SOURCES}
    )
    if unknown:
        parser.error(f"unknown effect or source: {', '.join(unknown)}")
    if args.seam:
        for row in seam_rows(args.size):
            print(f"{row.name}: {row.value:.3g} {row.unit}  {row.note}")
        return 0
    if args.resamplers:
        for row in resampler_rows(args.size):
            print(f"{row.name}: {row.value:.3g} {row.unit}  {row.note}")
        return 0
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
