"""Fuzzing the loader: whatever the bytes, the outcome is a screenplay or a clean error.

Random YAML documents and mutations of the shipped scenes (keys deleted, duplicated,
renamed or retyped, random scalars, truncation, random bytes) may only end in a
`LoadedScreenplay`, a `ScreenplayError` or a `UserError`, never in another exception,
and every diagnostic must point inside the file.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kandanim import presets
from kandanim.errors import ScreenplayError, UserError
from kandanim.screenplay import LoadedScreenplay, from_mapping, load_screenplay

ROOT = Path(__file__).resolve().parents[1]
SCENES = {p.name: p.read_text(encoding="utf-8") for p in sorted((ROOT / "scenes").glob("*.yaml"))}
FIELD_NAMES = [
    "version", "title", "output", "fps", "resolution", "seed", "engine", "models", "defaults",
    "transition", "audio", "scenes", "prompt", "effect", "camera", "duration", "strength",
    "near", "far", "t", "x", "z", "yaw", "ease", "type", "path", "init_image", "value",
]  # fmt: skip

# KANDANIM_FUZZ_EXAMPLES=5000 for a deeper run by hand; the suite keeps it to seconds.
FUZZ = settings(
    max_examples=int(os.environ.get("KANDANIM_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["zoom-in", "zoom-ot", "landscape", "64x64", "100x7", "in-out", "cut"]),
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(min_size=1, max_size=8), st.integers(0, 3))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A scratch folder; the real effect catalogue is loaded once for the whole module."""
    cached = functools.lru_cache(maxsize=None)(presets.load_catalogue)  # the real one
    with tempfile.TemporaryDirectory() as name, pytest.MonkeyPatch.context() as patch:
        patch.setattr(presets, "load_catalogue", lambda dirs=(): cached(tuple(dirs)))
        yield Path(name)


def _outcome(path: Path, content: bytes) -> LoadedScreenplay | None:
    path.write_bytes(content)
    try:
        return load_screenplay(path)
    except ScreenplayError as error:
        _check_positions(error, content)
    except UserError as error:
        assert error.message
    return None


def _check_positions(error: ScreenplayError, content: bytes) -> None:
    assert error.diagnostics
    lines = content.count(b"\n") + 1
    for diagnostic in error.diagnostics:
        assert diagnostic.line >= 1, diagnostic
        assert diagnostic.line <= lines + 1, diagnostic
        assert diagnostic.col >= 1, diagnostic
        assert diagnostic.message.strip(), diagnostic
        assert "Input should" not in diagnostic.message, diagnostic


@FUZZ
@given(data=documents)
def test_random_documents_give_a_screenplay_or_a_clean_error(folder: Path, data: Any) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    _outcome(folder / "random.yaml", text.encode("utf-8"))


@FUZZ
@given(data=st.dictionaries(keys, documents, max_size=6))
def test_random_mappings_through_from_mapping(folder: Path, data: dict[Any, Any]) -> None:
    try:
        from_mapping(data, base_dir=folder)
    except ScreenplayError as error:
        assert error.diagnostics
        assert all(d.message.strip() for d in error.diagnostics)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, prefix + (index,))
    return found


def _container(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


@st.composite
def structural_mutants(draw: st.DrawFn) -> str:
    """A shipped scene with keys deleted, renamed or retyped, dumped back to YAML."""
    data = yaml.safe_load(SCENES[draw(st.sampled_from(sorted(SCENES)))])
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, last = _container(data, path), path[-1]
        action = draw(st.sampled_from(["delete", "rename", "retype", "scalar"]))
        if action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif action == "retype":
            parent[last] = draw(documents)
        else:
            parent[last] = draw(scalars)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


@st.composite
def textual_mutants(draw: st.DrawFn) -> bytes:
    """A shipped scene with a line duplicated, truncated, or random bytes spliced in."""
    text = SCENES[draw(st.sampled_from(sorted(SCENES)))]
    action = draw(st.sampled_from(["duplicate-line", "truncate", "bytes", "tab"]))
    if action == "duplicate-line":
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[: at + 1] + [lines[at]] + lines[at + 1 :]).encode("utf-8")
    raw = text.encode("utf-8")
    at = draw(st.integers(0, len(raw)))
    if action == "truncate":
        return raw[:at]
    if action == "tab":
        return raw[:at] + b"\t" + raw[at:]
    return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]


@FUZZ
@given(text=structural_mutants())
def test_structural_mutations_of_the_scenes(folder: Path, text: str) -> None:
    _outcome(folder / "mutant.yaml", text.encode("utf-8"))


@FUZZ
@given(content=textual_mutants())
def test_textual_mutations_of_the_scenes(folder: Path, content: bytes) -> None:
    _outcome(folder / "mutant.yaml", content)
