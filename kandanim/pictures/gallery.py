"""The effect gallery (`kandanim effects --gallery DIR`): a looping clip of every effect.

Each effect runs for 4 s on the preview engine (the built-in scene, or the user's photo)
through the same planner and render loop as a real render, and is written as a looping
animated WebP of at most `MAX_CLIP_BYTES`; an `index.html` shows the clips in a grid
with name, description, aliases and motion, so a user can open it and pick a move.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features

from kandanim.errors import RuntimeFailure, UserError
from kandanim.pictures.effect_plans import SHOW_SECONDS, effect_plan
from kandanim.plan import Plan
from kandanim.presets import Catalogue

RENDER_FPS = 24  # rendered as `kandanim preview` renders it ...
CLIP_FPS = 12  # ... and every other frame kept: half the bytes, the same motion
DEFAULT_RESOLUTION = "320x320"
MAX_CLIP_BYTES = 300_000
QUALITIES = (80, 65, 50, 35, 20)  # WebP quality ladder, tried in order until a clip fits
SHRINK = 0.8  # when even the lowest quality is too big, scale the frames by this and retry
INDEX = "index.html"


@dataclass(frozen=True)
class Clip:
    """One effect's clip in the gallery."""

    name: str
    description: str
    aliases: tuple[str, ...]
    motion: str
    file: str  # file name inside the gallery folder
    size_bytes: int
    frames: int
    width: int
    height: int


OnClip = Callable[[Clip, int, int], None]  # (clip, number done, total)


def render_gallery(
    folder: Path,
    catalogue: Catalogue,
    *,
    image: Path | None = None,
    resolution: str = DEFAULT_RESOLUTION,
    seconds: float | None = None,
    extra_presets: Sequence[Path] = (),
    on_clip: OnClip | None = None,
) -> list[Clip]:
    """Render every effect of `catalogue` into `folder` and write `folder/index.html`.

    Each clip shows `seconds` of its effect (default `SHOW_SECONDS`, the scene length
    the effects are tuned for). Returns the clips in catalogue order. Raises UserError
    for a folder that cannot be one or a bad image or resolution (before writing
    anything), RuntimeFailure when Pillow cannot write WebP or the disk fails.
    """
    from kandanim.planview import motion_summary

    _require_webp()
    seconds = SHOW_SECONDS if seconds is None else seconds
    presets = catalogue.presets()
    plans = [  # all planned first: a bad option fails before anything is written
        effect_plan(
            preset, duration=seconds, fps=RENDER_FPS, resolution=resolution, image=image,
            extra_presets=extra_presets,
        )
        for preset in presets
    ]
    _make_folder(folder)
    clips: list[Clip] = []
    for done, (preset, plan) in enumerate(zip(presets, plans, strict=True), start=1):
        frames = render_frames(plan)[:: RENDER_FPS // CLIP_FPS]
        file = f"{preset.name}.webp"
        size, (width, height) = write_clip(frames, folder / file, CLIP_FPS)
        clip = Clip(
            name=preset.name,
            description=preset.description,
            aliases=tuple(catalogue.aliases_of(preset.name)),
            motion=motion_summary(preset),
            file=file,
            size_bytes=size,
            frames=len(frames),
            width=width,
            height=height,
        )
        clips.append(clip)
        if on_clip is not None:
            on_clip(clip, done, len(presets))
    _write_text(folder / INDEX, index_html(clips, _source_note(image, len(presets), seconds)))
    return clips


def render_frames(plan: Plan) -> list[np.ndarray]:
    """Every frame of `plan` rendered by the preview engine, (H, W, 3) uint8 RGB each."""
    from kandanim.engines.preview import PreviewEngine
    from kandanim.render import Renderer

    engine = PreviewEngine()
    engine.prepare(plan)
    return [image for _, image in Renderer(plan, engine).frames()]


def write_clip(
    frames: Sequence[np.ndarray], path: Path, fps: int, max_bytes: int = MAX_CLIP_BYTES
) -> tuple[int, tuple[int, int]]:
    """Write `frames` as a looping animated WebP of at most `max_bytes`.

    Tries falling qualities, then smaller frames, until the clip fits. Returns (bytes
    written, (width, height)). The file appears complete or not at all.
    """
    images = [Image.fromarray(frame) for frame in frames]
    while True:
        for quality in QUALITIES:
            data = _encode_webp(images, fps, quality)
            if len(data) <= max_bytes:
                _write_bytes(path, data)
                return len(data), images[0].size
        width, height = images[0].size
        smaller = (max(16, round(width * SHRINK)), max(16, round(height * SHRINK)))
        if smaller == (width, height):
            raise RuntimeFailure(f"cannot make {path.name} smaller than {max_bytes} bytes")
        images = [im.resize(smaller, Image.Resampling.LANCZOS) for im in images]


def _encode_webp(images: Sequence[Image.Image], fps: int, quality: int) -> bytes:
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="WEBP", save_all=True, append_images=list(images[1:]),
        duration=round(1000 / fps), loop=0, quality=quality, method=4,
    )
    return buffer.getvalue()


def index_html(clips: Sequence[Clip], note: str) -> str:
    """A self-contained page: the clips in a grid, each with name, description, aliases."""
    cards = "\n".join(_card(clip) for clip in clips)
    return _PAGE.format(count=len(clips), note=html.escape(note), cards=cards)


def _card(clip: Clip) -> str:
    aliases = ", ".join(clip.aliases) if clip.aliases else "none"
    return _CARD.format(
        file=html.escape(clip.file, quote=True),
        name=html.escape(clip.name),
        alt=html.escape(f"{clip.name}: {clip.description}", quote=True),
        width=clip.width,
        height=clip.height,
        description=html.escape(clip.description),
        aliases=html.escape(aliases),
        motion=html.escape(clip.motion),
    )


def _source_note(image: Path | None, count: int, seconds: float) -> str:
    scene = f"on {image.name}" if image is not None else "on the built-in test scene"
    return (
        f"{count} effects, {seconds:g} s each {scene}, rendered by the preview "
        "engine (no diffusion). Put one in a scene with effect: NAME."
    )


def _require_webp() -> None:
    if not features.check("webp"):
        raise RuntimeFailure(
            "this Pillow was built without WebP support, which the gallery needs",
            hint="install Pillow's wheel from PyPI: pip install --force-reinstall pillow",
        )


def _make_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(
            f"--gallery {folder}: that is a file", hint="name a folder (it is created if missing)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"--gallery {folder}: cannot create the folder: {error.strerror or error}"
        ) from None


def _write_bytes(path: Path, data: bytes) -> None:
    """Write through a temporary name and rename, so a clip is never half written."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise RuntimeFailure(f"cannot write {path}: {error.strerror or error}") from None


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kandanim effects</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2rem; background: #fafafa; color: #222; }}
  h1 {{ margin-bottom: 0.2rem; }}
  .note {{ color: #555; margin-top: 0; }}
  .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
          gap: 1.2rem; }}
  figure {{ margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px;
           padding: 0.6rem; }}
  figure img {{ width: 100%; height: auto; display: block; border-radius: 3px; }}
  figcaption h2 {{ font-size: 1.05rem; margin: 0.5rem 0 0.2rem; font-family: monospace; }}
  figcaption p {{ margin: 0.15rem 0; font-size: 0.9rem; }}
  .meta {{ color: #666; font-size: 0.8rem; }}
</style>
</head>
<body>
<h1>kandanim effects</h1>
<p class="note">{note}</p>
<div class="grid">
{cards}
</div>
<!-- {count} effects -->
</body>
</html>
"""

_CARD = """<figure id="{name}">
  <img src="{file}" alt="{alt}" width="{width}" height="{height}" loading="lazy">
  <figcaption>
    <h2>{name}</h2>
    <p>{description}</p>
    <p class="meta">aliases: {aliases}</p>
    <p class="meta">motion: {motion}</p>
  </figcaption>
</figure>"""
