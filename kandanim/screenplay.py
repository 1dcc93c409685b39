"""Screenplay file → validated, frozen `LoadedScreenplay` with effects resolved.

Everything after this module trusts what it returns: the model is valid, effect names are
resolved to presets, and file paths (`init_image`, `audio.path`, `output`) are absolute.
Every problem in a file is collected and raised at once as a `ScreenplayError` whose
diagnostics read `file:line:col: field.path: message`.

Rules decided here (beyond the pydantic models of `spec.py`):

* A scene with neither `effect` nor `camera` gets `spec.DEFAULT_EFFECT` ("in-place"): a
  prompt alone should make a living picture, as in the original bot, not a frozen shot
  that burns in under repeated img2img. A scene with only `camera:` has no effect (None).
* `version` must be 1; older versions would go through `MIGRATIONS` with a notice.
* `far` must exceed `near` as resolved for each scene (scene > defaults > effect preset >
  built-in), and keyframe / schedule times must increase.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from kandanim import spec
from kandanim.errors import Diagnostic, ScreenplayError
from kandanim.sources import (
    PathKey,
    SourceDocument,
    describe,
    did_you_mean,
    document_from_data,
    parse_yaml,
    read_text,
    sort_diagnostics,
    validate_data,
)

CURRENT_VERSION = 1
SCHEMA_URL = "https://json-schema.org/draft/2020-12/schema"

# version N → a function turning version-N data into version N+1 data (none exist yet).
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


class Catalogue(Protocol):
    """What the loader needs from `kandanim.presets.Catalogue`."""

    def get(self, name: str) -> spec.Preset | None: ...

    def names(self) -> list[str]: ...


@dataclass(frozen=True)
class LoadedScreenplay:
    path: Path  # the screenplay file (for in-memory screenplays: base_dir / name)
    base_dir: Path  # absolute folder that relative paths in the screenplay start from
    text: str  # the YAML text (for in-memory screenplays: the data dumped as YAML)
    digest: str  # sha256 of `text`, hex
    screenplay: spec.Screenplay  # validated; paths absolute
    effects: tuple[spec.Preset | None, ...]  # one per scene; None for a pure `camera:` scene
    notices: tuple[str, ...] = ()  # e.g. "migrated from version 0"; the CLI shows them


def load_screenplay(path: Path, extra_presets: Sequence[Path] = ()) -> LoadedScreenplay:
    """Read and validate a screenplay file; ScreenplayError lists every problem at once.

    A missing or unreadable file is a UserError. Effects are looked up in the built-in
    catalogue, a `presets/` folder beside the screenplay, and `extra_presets`.
    """
    text = read_text(path)
    base_dir = path.parent.resolve()
    document = parse_yaml(text, str(path))
    return _load(document, text, path, base_dir, extra_presets)


def load_screenplay_text(
    text: str, path: Path, extra_presets: Sequence[Path] = ()
) -> LoadedScreenplay:
    """The same validation for YAML text held in memory (a Deforum file imported on the
    fly); `path` names it in messages and its folder anchors relative paths."""
    document = parse_yaml(text, str(path))
    return _load(document, text, path, path.parent.resolve(), extra_presets)


def effect_document(
    effect: str,
    *,
    duration: float,
    fps: int,
    resolution: str,
    image: Path | None = None,
    depth: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """The one-scene screenplay that shows `effect` on the preview engine for `duration`
    seconds (`kandanim preview`, `effects --plot`, the gallery), from `image` when given
    (stored as an absolute path) and with `depth` when given. Plain data: load it with
    `from_mapping`, which validates it like any screenplay."""
    scene: dict[str, Any] = {"prompt": f"{effect} preview", "effect": effect}
    if depth is not None:
        scene["depth"] = depth
    if image is not None:
        scene["init_image"] = str(image.resolve())
    return {
        "version": 1,
        "title": title or f"{effect} preview",
        "fps": fps,
        "resolution": resolution,
        "seed": 0,
        "engine": "preview",
        "defaults": {"duration": duration},
        "scenes": [scene],
    }


def from_mapping(
    data: dict[str, Any],
    *,
    base_dir: Path,
    name: str = "<preview>",
    extra_presets: Sequence[Path] = (),
) -> LoadedScreenplay:
    """The same validation for a screenplay built in code (the `preview` command)."""
    document = document_from_data(data, name)
    text = yaml.safe_dump(_dumpable(data), sort_keys=False, allow_unicode=True)
    base_dir = base_dir.resolve()
    return _load(document, text, base_dir / name, base_dir, extra_presets)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a screenplay, for editor completion (`kandanim schema`)."""
    schema = spec.Screenplay.model_json_schema(mode="validation")
    effect = schema["$defs"]["Scene"]["properties"]["effect"]
    effect["examples"] = _builtin_effect_names()
    return {
        "$schema": SCHEMA_URL,
        "title": "kandanim screenplay",
        "description": "Scenes of a camera-animated video (see `kandanim effects`).",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


# --------------------------------------------------------------------------- internals


def _load(
    document: SourceDocument,
    text: str,
    path: Path,
    base_dir: Path,
    extra_presets: Sequence[Path],
) -> LoadedScreenplay:
    diagnostics: list[Diagnostic] = []
    data, notices = _migrate(document, diagnostics)
    model, problems = validate_data(document, spec.Screenplay, data=data, key_hint=_placement)
    diagnostics += problems
    catalogue = _catalogue(base_dir, extra_presets, diagnostics)
    effects = _resolve_effects(document, catalogue, diagnostics)
    diagnostics += _missing_files(document, base_dir)
    diagnostics += _ordering_problems(document)
    diagnostics += _depth_range_problems(document, effects)
    diagnostics += _timing_problems(document)
    diagnostics += _output_problems(document)
    diagnostics += _missing_prompts(document)
    if diagnostics or model is None:
        raise ScreenplayError(_unique(diagnostics))
    return LoadedScreenplay(
        path=path,
        base_dir=base_dir,
        text=text,
        digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        screenplay=_with_defaults(_absolute_paths(model, base_dir)),
        effects=tuple(effects[i] for i in range(len(model.scenes))),
        notices=tuple(notices),
    )


def _unique(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sort_diagnostics(dict.fromkeys(diagnostics))


# ---- version


def _migrate(
    document: SourceDocument, diagnostics: list[Diagnostic]
) -> tuple[dict[str, Any], list[str]]:
    """A copy of the data at CURRENT_VERSION; a bad version is reported once, here."""
    data = copy.deepcopy(document.data)
    notices: list[str] = []
    if "version" not in data:
        return data, notices
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        message = f"expected a whole number such as {CURRENT_VERSION}, found {describe(version)}"
        diagnostics.append(document.diagnostic(("version",), message))
        del data["version"]
        return data, notices
    if version > CURRENT_VERSION:
        message = (
            f"version {version} is newer than this kandanim understands "
            f"(it reads version {CURRENT_VERSION}); upgrade kandanim"
        )
    elif version not in MIGRATIONS and version != CURRENT_VERSION:
        message = f"unknown version {version}; the current version is {CURRENT_VERSION}"
    else:
        while version < CURRENT_VERSION:
            data = MIGRATIONS[version](data)
            notices.append(f"migrated from version {version} to {version + 1}")
            version += 1
        data["version"] = CURRENT_VERSION
        return data, notices
    diagnostics.append(document.diagnostic(("version",), message))
    del data["version"]
    return data, notices


# ---- unknown keys in the wrong place


_SECTIONS: dict[str, set[str]] = {
    "top": set(spec.Screenplay.model_fields),
    "defaults": set(spec.SceneDefaults.model_fields),
    "scene": set(spec.Scene.model_fields),
}
_WHERE = {
    "top": "is set once, at the top level",
    "defaults": "goes under 'defaults:' (or in a scene)",
    "scene": "is set in each scene",
}
_ELSEWHERE = {"top": ("defaults", "scene"), "defaults": ("top", "scene"), "scene": ("top",)}


def _placement(path: PathKey) -> str | None:
    """Explain a key that belongs elsewhere in a screenplay ("duration" at the top level).

    None (the generic did-you-mean) when the best match is a key valid right here.
    """
    section = _section(path[:-1])
    if section is None:
        return None
    key = str(path[-1])
    here = _similarity(key, _SECTIONS[section])
    for other in _ELSEWHERE[section]:
        elsewhere = _SECTIONS[other] - _SECTIONS[section]
        if key in elsewhere:
            return f"'{key}' cannot be set here: it {_WHERE[other]}"
        target = max(elsewhere, key=lambda name: _ratio(key, name), default=None)
        if target is not None and _ratio(key, target) >= _CUTOFF and _ratio(key, target) > here:
            return f"unknown key '{key}' — did you mean '{target}'? It {_WHERE[other]}"
    return None


_CUTOFF = 0.6  # difflib's own default for close matches


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def _similarity(key: str, names: set[str]) -> float:
    return max((_ratio(key, name) for name in names), default=0.0)


def _section(where: PathKey) -> str | None:
    if where == ():
        return "top"
    if where == ("defaults",):
        return "defaults"
    if len(where) == 2 and where[0] == "scenes":
        return "scene"
    return None


# ---- effects


def _catalogue(
    base_dir: Path, extra_presets: Sequence[Path], diagnostics: list[Diagnostic]
) -> Catalogue | None:
    from kandanim.presets import load_catalogue

    local = base_dir / "presets"
    dirs = ([local] if local.is_dir() else []) + list(extra_presets)
    try:
        return load_catalogue(dirs)
    except ScreenplayError as error:  # a broken preset file: report it with the rest
        diagnostics.extend(error.diagnostics)
        return None


def _scenes(document: SourceDocument) -> list[tuple[int, dict[str, Any]]]:
    """The scenes that are mappings, with their index (others are pydantic's to report)."""
    scenes = document.data.get("scenes")
    if not isinstance(scenes, list):
        return []
    return [(i, scene) for i, scene in enumerate(scenes) if isinstance(scene, dict)]


def _resolve_effects(
    document: SourceDocument, catalogue: Catalogue | None, diagnostics: list[Diagnostic]
) -> dict[int, spec.Preset | None]:
    defaults = _defaults(document)
    effects: dict[int, spec.Preset | None] = {}
    for index, scene in _scenes(document):
        # a scene's own effect, else defaults:' effect, else in-place unless it has a camera
        name = scene.get("effect", defaults.get("effect"))
        at: PathKey = ("scenes", index, "effect") if "effect" in scene else ("defaults", "effect")
        if name is None and scene.get("camera", defaults.get("camera")) is None:
            name, at = spec.DEFAULT_EFFECT, ()
        if not isinstance(name, str) or catalogue is None:
            effects[index] = None
            continue
        preset = catalogue.get(name)
        if preset is None and at:
            message = f"unknown effect '{name}'{did_you_mean(name, catalogue.names())}"
            if not did_you_mean(name, catalogue.names()):
                message += "; see `kandanim effects` for the list"
            diagnostics.append(document.diagnostic(at, message))  # once for defaults: (unique)
        effects[index] = preset
    return effects


def _defaults(document: SourceDocument) -> dict[str, Any]:
    defaults = document.data.get("defaults")
    return defaults if isinstance(defaults, dict) else {}


def _missing_prompts(document: SourceDocument) -> list[Diagnostic]:
    """Every scene needs a prompt, its own or from defaults:."""
    if "prompt" in _defaults(document):
        return []
    return [
        document.diagnostic(
            ("scenes", index, "prompt"),
            "missing required field 'prompt' (set it in the scene, or once in defaults:)",
        )
        for index, scene in _scenes(document)
        if "prompt" not in scene
    ]


def _with_defaults(model: spec.Screenplay) -> spec.Screenplay:
    """Scenes with the scene-only fields they leave out taken from defaults: (the
    settings are layered later, by the plan, with the effect presets in between)."""
    defaults = model.defaults
    scenes = []
    for scene in model.scenes:
        inherited = {
            name: getattr(defaults, name)
            for name in spec.SCENE_ONLY_FIELDS
            if getattr(scene, name) is None and getattr(defaults, name) is not None
        }
        scenes.append(scene.model_copy(update=inherited) if inherited else scene)
    return model.model_copy(update={"scenes": scenes})


# ---- files


def _missing_files(document: SourceDocument, base_dir: Path) -> list[Diagnostic]:
    """Input files that must exist: every scene's init_image and the audio track."""
    wanted: list[tuple[PathKey, Any]] = [
        (("scenes", i, "init_image"), scene.get("init_image")) for i, scene in _scenes(document)
    ]
    wanted.append((("defaults", "init_image"), _defaults(document).get("init_image")))
    audio = document.data.get("audio")
    if isinstance(audio, dict):
        wanted.append((("audio", "path"), audio.get("path")))
    problems: list[Diagnostic] = []
    for path, value in wanted:
        if not isinstance(value, str) or not value:
            continue
        if _URL.match(value):
            problems.append(document.diagnostic(path, (
                f"'{value}' is a web address; download the file first and give its path "
                "(relative to the screenplay)"
            )))
            continue
        resolved = _absolute(Path(value), base_dir)
        if resolved.is_dir():
            problems.append(document.diagnostic(path, f"'{value}' is a folder, expected a file"))
        elif not resolved.is_file():
            problems.append(
                document.diagnostic(path, f"file not found: '{value}' (looked for {resolved})")
            )
        elif path[-1] == "init_image" and (reason := _unreadable_picture(resolved)):
            problems.append(document.diagnostic(path, f"cannot read '{value}' as a picture: {reason}"))
        elif path == ("audio", "path") and (reason := _unusable_sound(resolved)):
            problems.append(document.diagnostic(path, reason))
    return problems


def _unusable_sound(path: Path) -> str | None:
    """Why the writer could not use this soundtrack (the writer's own check), or None."""
    from kandanim.audio import probe_audio
    from kandanim.errors import UserError

    try:
        probe_audio(path)
    except UserError as error:
        return error.message + (f"; {error.hint}" if error.hint else "")
    return None


_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def _unreadable_picture(path: Path) -> str | None:
    """Why Pillow cannot identify the picture (its header only: instant), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path):
            return None
    except UnidentifiedImageError:
        return "not a picture format kandanim reads (PNG, JPEG, WebP, GIF, BMP, TIFF)"
    except OSError as error:
        return error.strerror or str(error)


def _absolute(path: Path, base_dir: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base_dir / path


def _absolute_paths(model: spec.Screenplay, base_dir: Path) -> spec.Screenplay:
    scenes = [
        scene.model_copy(update={"init_image": _absolute(scene.init_image, base_dir)})
        if scene.init_image is not None
        else scene
        for scene in model.scenes
    ]
    update: dict[str, Any] = {"scenes": scenes}
    if model.defaults.init_image is not None:
        update["defaults"] = model.defaults.model_copy(
            update={"init_image": _absolute(model.defaults.init_image, base_dir)}
        )
    if model.output is not None:
        update["output"] = _absolute(model.output, base_dir)
    if model.audio is not None:
        update["audio"] = model.audio.model_copy(
            update={"path": _absolute(model.audio.path, base_dir)}
        )
    return model.model_copy(update=update)


# ---- timing and output (what `plan` and `render` would otherwise find late)


def _timing_problems(document: SourceDocument) -> list[Diagnostic]:
    """Every scene lasts at least one frame at the screenplay's fps."""
    fps = document.data.get("fps", spec.Screenplay.model_fields["fps"].default)
    if not (isinstance(fps, int) and not isinstance(fps, bool) and 1 <= fps <= 120):
        return []  # pydantic reports a bad fps
    defaults = document.data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    candidates: list[tuple[PathKey, Any]] = [(("defaults", "duration"), defaults.get("duration"))]
    candidates += [
        (("scenes", i, "duration"), scene["duration"])
        for i, scene in _scenes(document)
        if "duration" in scene
    ]
    problems: list[Diagnostic] = []
    for path, duration in candidates:
        if _is_number(duration) and duration > 0 and spec.frame_count(duration, fps) < 1:
            problems.append(document.diagnostic(path, (
                f"{duration:g} s is less than one frame at {fps} fps; "
                f"make it at least {1 / fps:.3g} s"
            )))
    return problems


def _output_problems(document: SourceDocument) -> list[Diagnostic]:
    """`output:` names a format kandanim writes."""
    from kandanim.errors import UserError
    from kandanim.outputs import output_format

    value = document.data.get("output")
    if not isinstance(value, str) or not value:
        return []
    try:
        output_format(value)
    except UserError as error:
        return [document.diagnostic(("output",), f"{error.message}")]
    return []


# ---- ordering and ranges


def _ordering_problems(document: SourceDocument) -> list[Diagnostic]:
    """Keyframe and schedule times must increase, or the motion is undefined."""
    lists: list[tuple[PathKey, Any]] = []
    defaults = document.data.get("defaults")
    if isinstance(defaults, dict):
        lists.append((("defaults", "strength"), defaults.get("strength")))
        lists.append((("defaults", "camera"), defaults.get("camera")))
    for index, scene in _scenes(document):
        lists.append((("scenes", index, "camera"), scene.get("camera")))
        lists.append((("scenes", index, "strength"), scene.get("strength")))
    problems: list[Diagnostic] = []
    for path, keys in lists:
        if isinstance(keys, list):
            problems += _increasing_times(document, path, keys)
    return problems


def _increasing_times(document: SourceDocument, path: PathKey, keys: list[Any]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    previous: float | None = None
    for index, key in enumerate(keys):
        t = key.get("t") if isinstance(key, dict) else None
        if not _is_number(t) or t < 0:  # pydantic reports wrong types and negatives
            continue
        if previous is not None and t <= previous:
            message = f"times must increase: t={t:g} comes after t={previous:g}"
            problems.append(document.diagnostic(path + (index, "t"), message))
        previous = t if previous is None else max(previous, t)
    return problems


def _is_number(value: Any) -> bool:
    """A finite int or float (pydantic reports anything else)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_LEVELS = ("scene", "defaults", "effect", "builtin")  # highest priority first


@dataclass(frozen=True)
class _Setting:
    value: Any
    level: str  # one of _LEVELS
    at: PathKey  # where to point at in the file


def _depth_range_problems(
    document: SourceDocument, effects: dict[int, spec.Preset | None]
) -> list[Diagnostic]:
    """`far` > `near` for each scene as resolved: scene > defaults > preset > built-in."""
    defaults = document.data.get("defaults")
    defaults = defaults if isinstance(defaults, dict) else {}
    problems: list[Diagnostic] = []
    # index None checks `defaults:` on its own, so a bad pair there is reported once
    candidates: list[tuple[int | None, dict[str, Any]]] = [(None, {}), *_scenes(document)]
    for index, scene in candidates:
        preset = effects.get(index) if index is not None else None
        near = _resolved("near", scene, index, defaults, preset)
        far = _resolved("far", scene, index, defaults, preset)
        if not (_is_number(near.value) and _is_number(far.value)) or far.value > near.value:
            continue
        if index is not None and near.level == far.level == "defaults":
            continue  # reported once, for defaults: itself
        culprit = far if _LEVELS.index(far.level) <= _LEVELS.index(near.level) else near
        message = f"far ({far.value:g}) must be greater than near ({near.value:g})"
        if near.level != far.level:
            message += f"; near comes from {_ORIGIN[near.level]}, far from {_ORIGIN[far.level]}"
        problems.append(document.diagnostic(culprit.at, message))
    return problems


_ORIGIN = {
    "scene": "the scene",
    "defaults": "defaults",
    "effect": "the effect preset",
    "builtin": "the built-in default",
}


def _resolved(
    name: str,
    scene: dict[str, Any],
    index: int | None,
    defaults: dict[str, Any],
    preset: spec.Preset | None,
) -> _Setting:
    """One setting of a scene and where it came from (index None: defaults: alone)."""
    if index is not None and name in scene:
        return _Setting(scene[name], "scene", ("scenes", index, name))
    if name in defaults:
        return _Setting(defaults[name], "defaults", ("defaults", name))
    value = getattr(preset.settings, name, None) if preset is not None else None
    if value is not None:
        return _Setting(value, "effect", ("scenes", index, "effect"))
    return _Setting(spec.BUILTIN_SETTINGS[name], "builtin", ())


# ---- schema and dumping


def _builtin_effect_names() -> list[str]:
    from kandanim.presets import load_catalogue

    catalogue = load_catalogue(())
    names = {preset.name for preset in (catalogue.get(n) for n in catalogue.names()) if preset}
    return sorted(names)


def _dumpable(value: Any) -> Any:
    """Plain YAML-safe data: paths as text, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): _dumpable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_dumpable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
