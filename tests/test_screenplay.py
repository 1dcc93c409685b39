"""The screenplay loader: positions, messages, effect resolution, paths, schema, CLI."""

from __future__ import annotations

import json
import re
import wave
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from kandanim import spec
from kandanim.cli import app
from kandanim.errors import Diagnostic, ScreenplayError, UserError
from kandanim.screenplay import from_mapping, json_schema, load_screenplay
from kandanim.sources import load_model, parse_yaml

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "bad"
EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S*?): (.+)$")


def _expectations(path: Path) -> list[tuple[int, int, str, str]]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(line)
        if match:
            found.append((int(match[1]), int(match[2]), match[3], match[4]))
    return found


def _diagnostics(path: Path) -> list[Diagnostic]:
    with pytest.raises(ScreenplayError) as caught:
        load_screenplay(path)
    return caught.value.diagnostics


@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_screenplay_reports_each_expected_error_at_its_position(path: Path) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} has no '# expect:' header"
    diagnostics = _diagnostics(path)
    shown = "\n".join(str(d) for d in diagnostics)
    assert len(diagnostics) == len(expected), shown
    for line, col, field, message in expected:
        matching = [
            d
            for d in diagnostics
            if (d.line, d.col, d.path) == (line, col, field) and message in d.message
        ]
        assert matching, f"no {line}:{col} {field}: {message!r} in\n{shown}"
    for diagnostic in diagnostics:
        assert diagnostic.file == str(path)
        assert "Input should" not in diagnostic.message  # pydantic's wording is translated
        assert str(diagnostic).startswith(f"{path}:{diagnostic.line}:{diagnostic.col}: ")


def _write(tmp_path: Path, text: str, name: str = "script.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_paths_become_absolute_relative_to_the_screenplay(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "pics" / "a.png")
    with wave.open(str(tmp_path / "music.mp3"), "wb") as sound:  # any format FFmpeg reads
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\0\0" * 800)
    path = _write(
        tmp_path,
        "output: renders/out.mp4\naudio: {path: music.mp3}\n"
        "scenes:\n  - {prompt: a, init_image: pics/a.png}\n",
    )
    loaded = load_screenplay(path)
    play = loaded.screenplay
    assert play.output == tmp_path.resolve() / "renders" / "out.mp4"
    assert play.audio is not None and play.audio.path == tmp_path.resolve() / "music.mp3"
    assert play.scenes[0].init_image == tmp_path.resolve() / "pics" / "a.png"
    assert loaded.base_dir == tmp_path.resolve()


def test_digest_is_sha256_of_the_text(tmp_path: Path) -> None:
    import hashlib

    text = "seed: 3\nscenes:\n  - prompt: a\n"
    loaded = load_screenplay(_write(tmp_path, text))
    assert loaded.text == text
    assert loaded.digest == hashlib.sha256(text.encode()).hexdigest()


def test_effects_resolve_aliases_and_scene_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "scenes:\n"
        "  - {prompt: a, effect: zoom-out}\n"
        "  - {prompt: b}\n"
        "  - {prompt: c, camera: [{t: 0}, {t: 1, z: 1}]}\n"
        "  - {prompt: d, effect: zoomin}\n",  # a deforum-kandinsky alias
    )
    effects = load_screenplay(path).effects
    assert [e.name if e else None for e in effects] == [
        "zoom-out",
        spec.DEFAULT_EFFECT,  # neither effect nor camera: a living picture
        None,  # camera only: pure keyframes
        "zoom-in",
    ]


def test_preset_folder_beside_the_screenplay_is_used(tmp_path: Path) -> None:
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "wobble.yaml").write_text(
        "name: wobble\ndescription: a custom sway\nkeyframes:\n  - {t: 0}\n  - {t: 1, x: 0.1}\n",
        encoding="utf-8",
    )
    path = _write(tmp_path, "scenes:\n  - {prompt: a, effect: wobble}\n")
    effects = load_screenplay(path).effects
    assert effects[0] is not None and effects[0].name == "wobble"


def test_missing_file_is_a_user_error_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_screenplay(tmp_path / "nope.yaml")
    assert "no such file" in caught.value.message
    assert caught.value.hint


def test_folder_instead_of_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a folder"):
        load_screenplay(tmp_path)


def test_non_utf8_file_is_reported_at_its_position(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"scenes:\n  - prompt: caf\xe9\n")
    with pytest.raises(ScreenplayError) as caught:
        load_screenplay(path)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.col) == (2, 16)
    assert "UTF-8" in diagnostic.message


def test_positions_index_values_and_keys() -> None:
    document = parse_yaml("a: 1\nlist:\n  - {b: x, c: [1, 2]}\n", "f.yaml")
    assert document.data == {"a": 1, "list": [{"b": "x", "c": [1, 2]}]}
    assert (document.locate(("a",)).line, document.locate(("a",)).col) == (1, 4)
    assert document.locate(("list", 0, "c", 1)) == document.values[("list", 0, "c", 1)]
    assert (
        document.locate(("list", 0, "c", 1)).line,
        document.locate(("list", 0, "c", 1)).col,
    ) == (3, 19)
    key = document.locate(("list", 0, "b"), key=True)
    assert (key.line, key.col) == (3, 6)
    # an unknown path falls back to its nearest known ancestor
    assert document.locate(("list", 0, "zz")) == document.locate(("list", 0))


def test_yaml_merge_keys_behave_like_safe_load() -> None:
    import yaml

    text = "base: &b {x: 1, y: 2}\nthing:\n  <<: *b\n  y: 3\n"
    assert parse_yaml(text, "f").data == yaml.safe_load(text)


def test_alias_bomb_is_rejected_not_expanded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prior = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([prior] * 10)}]")
    with pytest.raises(ScreenplayError, match="too large"):
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")


def test_from_mapping_validates_like_a_file(tmp_path: Path) -> None:
    loaded = from_mapping(
        {"seed": 5, "scenes": [{"prompt": "a", "effect": "orbit-left", "duration": 1}]},
        base_dir=tmp_path,
    )
    assert loaded.effects[0] is not None and loaded.effects[0].name == "orbit-left"
    assert loaded.screenplay.scenes[0].duration == 1
    assert "orbit-left" in loaded.text and len(loaded.digest) == 64

    with pytest.raises(ScreenplayError) as caught:
        from_mapping(
            {"resolution": "701x700", "scenes": [{"prompt": "a", "effect": "zoom-ot"}]},
            base_dir=tmp_path,
        )
    messages = [str(d) for d in caught.value.diagnostics]
    assert messages == [
        (
            "<preview>: resolution: sides must be even numbers between 64 and 2048, got "
            "701x700; the nearest valid size is '702x700', and '704x704' keeps the aspect and "
            "renders without cropping"
        ),
        "<preview>: scene 1: effect: unknown effect 'zoom-ot' — did you mean 'zoom-out'?",
    ]


def test_load_model_validates_presets_with_positions(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: sway\ndescription: x\nkeyframes:\n  - {t: 0, roll: fast}\n")
    with pytest.raises(ScreenplayError) as caught:
        load_model(path, spec.Preset)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.line, diagnostic.col, diagnostic.path) == (4, 18, "keyframes.0.roll")


def test_json_schema_names_effects_and_is_committed() -> None:
    schema = json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    effect = schema["$defs"]["Scene"]["properties"]["effect"]
    assert {"zoom-in", "zoom-out", "orbit-right", "in-place"} <= set(effect["examples"])
    committed = ROOT / "schema" / "screenplay.schema.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == schema, (
        "schema/screenplay.schema.json is stale; regenerate it with "
        "`kandanim schema > schema/screenplay.schema.json`"
    )


runner = CliRunner()


def test_cli_validate_reports_a_misspelt_effect_without_traceback() -> None:
    bad = BAD / "misspelt_effect.yaml"
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:5:13: scene 1: effect: unknown effect 'zoom-ot'" in result.output
    assert "did you mean 'zoom-out'?" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_validate_missing_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.output
