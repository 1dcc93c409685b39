"""The effect catalogue: camera presets as YAML data, looked up by name or alias.

Presets live in `presets/NAME.yaml` at the repository root (next to the package), then in
any folders the user adds (a `presets/` folder beside the screenplay, `--presets DIR`).
Later folders override earlier ones: a preset replaces the one with the same name, and
a name or alias defined later takes that word over from an earlier folder. Within one
folder every name and alias must be unique.

Each file is validated by `spec.Preset` through `sources` (problems come back as
`file:line:col` diagnostics, every problem of every file at once), plus the rules a
schema cannot say: the `name` matches the file name, keyframe and schedule times
increase, `span: scene` times are fractions in 0..1, and `far` > `near`.

Lookup is forgiving about spelling style only: case, and `_` or spaces for `-`
(`Zoom_In` finds `zoom-in`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kandanim.errors import Diagnostic, RuntimeFailure, ScreenplayError, UserError
from kandanim.sources import SourceDocument, parse_yaml, read_text, validate_data
from kandanim.spec import Preset

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "presets"
PRESET_SUFFIXES = (".yaml", ".yml")


def lookup_key(name: str) -> str:
    """The form names and aliases are compared in: lower case, '-' for '_' and spaces."""
    return "-".join(name.strip().lower().replace("_", " ").split())


@dataclass(frozen=True)
class Entry:
    """One loaded preset and where it came from."""

    preset: Preset
    path: Path
    layer: int  # 0 = built-in folder, then one per user folder in order
    document: SourceDocument = field(repr=False, compare=False)


@dataclass(frozen=True)
class Catalogue:
    """Every known effect: canonical presets plus an index of names and aliases."""

    entries: dict[str, Entry]  # canonical name → entry
    index: dict[str, str]  # lookup_key(name or alias) → canonical name

    def get(self, name: str) -> Preset | None:
        """The preset for a canonical name or an alias, else None."""
        canonical = self.index.get(lookup_key(name))
        return self.entries[canonical].preset if canonical is not None else None

    def canonical(self, name: str) -> str | None:
        return self.index.get(lookup_key(name))

    def names(self) -> list[str]:
        """Canonical names and the aliases still pointing at them, sorted."""
        return sorted(self.entries) + sorted(
            alias for name in self.entries for alias in self.aliases_of(name)
        )

    def presets(self) -> list[Preset]:
        """Canonical presets sorted by name."""
        return [self.entries[name].preset for name in sorted(self.entries)]

    def aliases_of(self, name: str) -> list[str]:
        """The aliases of a canonical preset that no later folder has taken over."""
        entry = self.entries[name]
        return [a for a in entry.preset.aliases if self.index.get(lookup_key(a)) == name]

    def source(self, name: str) -> Path:
        """The file a canonical preset was loaded from."""
        return self.entries[name].path


def load_catalogue(dirs: Sequence[Path] = ()) -> Catalogue:
    """The built-in presets, then each folder of `dirs` in order (later ones override).

    Raises ScreenplayError listing every problem in every preset file, UserError for a
    user folder that does not exist, RuntimeFailure when the built-in folder is missing.
    """
    if not BUILTIN_DIR.is_dir():
        raise RuntimeFailure(
            f"the built-in effect presets are missing (looked in {BUILTIN_DIR})",
            hint="reinstall kandanim from its source folder: pip install -e .",
        )
    diagnostics: list[Diagnostic] = []
    layers: list[list[Entry]] = []
    for layer, folder in enumerate(_distinct([BUILTIN_DIR, *dirs])):
        layers.append(_load_folder(folder, layer, diagnostics))
    entries, index = _merge(layers, diagnostics)
    if diagnostics:
        raise ScreenplayError(diagnostics)
    return Catalogue(entries=entries, index=index)


def _distinct(folders: Sequence[Path]) -> list[Path]:
    """Each folder once, at its first place (a screenplay beside `presets/` repeats it)."""
    seen: set[Path] = set()
    distinct: list[Path] = []
    for folder in folders:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            distinct.append(folder)
    return distinct


def _load_folder(folder: Path, layer: int, diagnostics: list[Diagnostic]) -> list[Entry]:
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise UserError(
            f"preset folder {folder} {what}",
            hint="pass a folder of NAME.yaml effect presets (see `kandanim effects`)",
        )
    entries: list[Entry] = []
    for path in sorted(p for p in folder.iterdir() if p.suffix in PRESET_SUFFIXES):
        if not path.is_file():
            continue
        try:
            entry = _load_file(path, layer)
        except ScreenplayError as error:
            diagnostics.extend(error.diagnostics)
            continue
        entries.append(entry)
    return entries


def _load_file(path: Path, layer: int) -> Entry:
    """One preset file, validated; ScreenplayError with every problem found in it."""
    document = parse_yaml(read_text(path), str(path))
    preset, problems = validate_data(document, Preset)
    if preset is None:
        raise ScreenplayError(problems)
    problems = _semantic_problems(preset, path, document)
    if problems:
        raise ScreenplayError(problems)
    return Entry(preset=preset, path=path, layer=layer, document=document)


def _semantic_problems(preset: Preset, path: Path, document: SourceDocument) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    if preset.name != path.stem:
        problems.append(
            document.diagnostic(
                ("name",),
                f"the name '{preset.name}' must match the file name '{path.stem}' "
                f"(rename the file to {preset.name}{path.suffix}, or the name to '{path.stem}')",
            )
        )
    if lookup_key(preset.name) != preset.name:
        problems.append(
            document.diagnostic(
                ("name",), f"write the name in lower case with '-': '{lookup_key(preset.name)}'"
            )
        )
    problems += _increasing(document, ("keyframes",), [k.t for k in preset.keyframes])
    if isinstance(preset.settings.strength, list):
        times = [k.t for k in preset.settings.strength]
        problems += _increasing(document, ("settings", "strength"), times)
    if preset.span == "scene":
        for i, key in enumerate(preset.keyframes):
            if key.t > 1:
                message = f"with span: scene, t is a fraction of the scene (0 to 1), got {key.t:g}"
                problems.append(document.diagnostic(("keyframes", i, "t"), message))
    near, far = preset.settings.near, preset.settings.far
    if near is not None and far is not None and far <= near:
        message = f"far ({far:g}) must be greater than near ({near:g})"
        problems.append(document.diagnostic(("settings", "far"), message))
    return problems


def _increasing(
    document: SourceDocument, where: tuple[Any, ...], times: Iterable[float]
) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    previous: float | None = None
    for i, t in enumerate(times):
        if previous is not None and t <= previous:
            message = f"times must increase: t={t:g} comes after t={previous:g}"
            problems.append(document.diagnostic((*where, i, "t"), message))
        previous = t if previous is None else max(previous, t)
    return problems


def _merge(
    layers: list[list[Entry]], diagnostics: list[Diagnostic]
) -> tuple[dict[str, Entry], dict[str, str]]:
    """Apply folders in order: names replace, words (names and aliases) are taken over."""
    entries: dict[str, Entry] = {}
    index: dict[str, str] = {}
    for layer in layers:
        claimed = _claim_words(layer, diagnostics)
        replaced = {entry.preset.name for entry in layer}
        # an overriding preset brings its own aliases: drop the ones of the version it replaces
        index = {word: name for word, name in index.items() if name not in replaced}
        for entry in layer:
            entries[entry.preset.name] = entry
        for word, entry in claimed.items():
            index[word] = entry.preset.name
    return entries, index


def _claim_words(layer: list[Entry], diagnostics: list[Diagnostic]) -> dict[str, Entry]:
    """Names and aliases of one folder; a word used twice in the folder is an error."""
    claimed: dict[str, Entry] = {}
    claimed_at: dict[str, str] = {}
    for entry in layer:
        claimed[lookup_key(entry.preset.name)] = entry
        claimed_at[lookup_key(entry.preset.name)] = f"the name of {entry.path.name}"
    for entry in layer:
        for i, alias in enumerate(entry.preset.aliases):
            word = lookup_key(alias)
            owner = claimed.get(word)
            if owner is entry and word == lookup_key(entry.preset.name):
                message = f"alias '{alias}' repeats the preset's own name"
            elif owner is not None and owner is not entry:
                message = (
                    f"alias '{alias}' is already {claimed_at[word]}; "
                    "every name and alias must be unique"
                )
            elif owner is entry:
                message = f"alias '{alias}' is listed twice"
            else:
                claimed[word] = entry
                claimed_at[word] = f"an alias in {entry.path.name}"
                continue
            diagnostics.append(entry.document.diagnostic(("aliases", i), message))
    return claimed
