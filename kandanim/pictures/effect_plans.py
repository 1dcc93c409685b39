"""One-scene plans that show a single effect (`effects NAME --plot`, the gallery).

No torch import: the plot path stays instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kandanim.errors import UserError
from kandanim.plan import Plan, build_plan
from kandanim.presets import Catalogue
from kandanim.sources import did_you_mean
from kandanim.spec import Preset
from kandanim.trajectory import ResolvedKey, resolve_keys

SHOW_SECONDS = 4.0  # the scene length every effect is tuned for (SPEC §4)


def find_effect(catalogue: Catalogue, name: str) -> Preset:
    """The preset called `name` (or an alias of it); UserError with a suggestion if none."""
    preset = catalogue.get(name)
    if preset is None:
        raise UserError(
            f"unknown effect '{name}'{did_you_mean(name, catalogue.names())}",
            hint="run `kandanim effects` for the list",
        )
    return preset


def show_seconds(preset: Preset) -> float:
    """How long to show an effect: 4 s, or long enough to reach its last keyframe."""
    if preset.span == "scene":
        return SHOW_SECONDS
    return max(SHOW_SECONDS, max((key.t for key in preset.keyframes), default=0.0))


def effect_plan(
    preset: Preset,
    *,
    duration: float,
    fps: int = 24,
    resolution: str = "square",
    image: Path | None = None,
    extra_presets: Sequence[Path] = (),
) -> Plan:
    """The plan of a one-scene screenplay that runs `preset` for `duration` seconds.

    Built through the same loader and planner as a user's screenplay, so what is drawn or
    rendered is exactly what a scene with `effect: NAME` does. Raises UserError for a bad
    resolution or image path.
    """
    from kandanim.screenplay import effect_document, from_mapping

    document = effect_document(
        preset.name, duration=duration, fps=fps, resolution=resolution, image=image,
        title=f"{preset.name}: {preset.description}",
    )
    loaded = from_mapping(
        document, base_dir=Path.cwd(), name="<effect options>", extra_presets=extra_presets
    )
    return build_plan(loaded, engine="preview")


def effect_keys(preset: Preset, duration: float) -> list[ResolvedKey]:
    """The preset's keyframes with held values filled in, in seconds of a `duration` scene."""
    scale = duration if preset.span == "scene" else 1.0
    return resolve_keys(preset.keyframes, time_scale=scale)
