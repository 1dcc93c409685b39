"""The effect catalogue: shipped presets, their directions, lookup, user folders, the CLI."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kandanim.camera import intrinsics, relative_move
from kandanim.cli import app
from kandanim.errors import ScreenplayError, UserError
from kandanim.presets import BUILTIN_DIR, load_catalogue
from kandanim.trajectory import camera_path, scene_motion, user_values

EFFECTS = [
    "in-place", "zoom-in", "zoom-out", "left", "right", "up", "down", "turn-left",
    "turn-right", "tilt-up", "tilt-down", "orbit-left", "orbit-right", "spin-cw", "spin-ccw",
    "rotate-360",
]
EXTRAS = ["dive-in", "look-around"]
CATALOGUE = load_catalogue()


def first_second(name: str) -> dict[str, float]:
    """The motion over the first second of a 4 s scene, user convention."""
    motion = scene_motion(CATALOGUE.get(name), None, 4.0).at(1.0)
    return dict(zip(("x", "y", "z", "yaw", "pitch", "roll"), user_values(motion)))


# --------------------------------------------------------------------------- shipped presets


def test_every_effect_ships_with_a_one_line_description() -> None:
    assert sorted(p.name for p in CATALOGUE.presets()) == sorted(EFFECTS + EXTRAS)
    files = sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))
    assert files == sorted(EFFECTS + EXTRAS)
    for preset in CATALOGUE.presets():
        assert preset.description.strip() and "\n" not in preset.description
        assert len(preset.description) < 120


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("live", "in-place"), ("zoomin", "zoom-in"), ("zoomout", "zoom-out"),
        ("rotate_left", "turn-left"), ("rotate_right", "turn-right"), ("rotate_up", "tilt-up"),
        ("rotate_down", "tilt-down"), ("around_left", "orbit-left"),
        ("around_right", "orbit-right"), ("spin_clockwise", "spin-cw"),
        ("spin_counterclockwise", "spin-ccw"), ("move_left", "left"), ("move_right", "right"),
        ("move_up", "up"), ("move_down", "down"), ("Zoom_In", "zoom-in"),
        ("ORBIT RIGHT", "orbit-right"),
    ],
)
def test_deforum_names_and_spelling_variants_resolve(alias: str, name: str) -> None:
    preset = CATALOGUE.get(alias)
    assert preset is not None and preset.name == name


def test_names_lists_canonical_names_then_aliases() -> None:
    names = CATALOGUE.names()
    assert set(EFFECTS) <= set(names) and "zoomin" in names
    assert CATALOGUE.get("zoom-ot") is None


@pytest.mark.parametrize(
    ("name", "axis", "sign"),
    [
        ("zoom-in", "z", 1), ("zoom-out", "z", -1), ("right", "x", 1), ("left", "x", -1),
        ("up", "y", 1), ("down", "y", -1), ("turn-right", "yaw", 1), ("turn-left", "yaw", -1),
        ("tilt-up", "pitch", 1), ("tilt-down", "pitch", -1), ("spin-cw", "roll", -1),
        ("spin-ccw", "roll", 1), ("orbit-right", "x", 1), ("orbit-right", "yaw", -1),
        ("orbit-left", "x", -1), ("orbit-left", "yaw", 1), ("dive-in", "z", 1),
        ("rotate-360", "yaw", 1),
    ],
)
def test_effect_moves_the_way_its_name_says(name: str, axis: str, sign: int) -> None:
    motion = first_second(name)
    assert motion[axis] * sign > 0
    magnitude = abs(motion[axis])
    assert magnitude >= (1.0 if axis in ("yaw", "pitch", "roll") else 0.05)  # visible


@pytest.mark.parametrize("name", [n for n in EFFECTS + EXTRAS if n != "rotate-360"])
def test_motion_is_gentle_at_24_fps(name: str) -> None:
    """No effect but the full turn moves more than ~0.02 units or 0.5° per frame."""
    motion = scene_motion(CATALOGUE.get(name), None, 4.0)
    poses = camera_path([motion], [96], 24)
    for a, b in itertools.pairwise(poses):
        rotation, translation = relative_move(a, b)
        angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert np.linalg.norm(translation) < 0.02 and angle < 0.5


def test_in_place_barely_moves() -> None:
    motion = first_second("in-place")
    assert np.linalg.norm([motion["x"], motion["y"], motion["z"]]) < 0.02
    assert max(abs(motion[a]) for a in ("yaw", "pitch", "roll")) < 0.1
    assert CATALOGUE.get("in-place").settings.strength > 0.15  # lives through img2img


def test_rotate_360_turns_once_over_any_scene_length() -> None:
    preset = CATALOGUE.get("rotate-360")
    for seconds, fps in ((4.0, 24), (7.0, 30)):
        count = int(seconds * fps)
        poses = camera_path([scene_motion(preset, None, seconds)] * 2, [count, count], fps)
        assert poses[count].yaw - poses[0].yaw == pytest.approx(360.0)


@pytest.mark.parametrize("name", ["orbit-right", "orbit-left"])
def test_orbit_keeps_the_focus_point_centred(name: str) -> None:
    focus = np.array([0.0, 0.0, 3.0])  # the presets' focus distance
    poses = camera_path([scene_motion(CATALOGUE.get(name), None, 10.0)], [240], 24)
    for pose in poses[::7]:
        in_camera = pose.world_from_cam_rotation.T @ (focus - pose.position_cv)
        assert np.allclose(in_camera, [0.0, 0.0, 3.0], atol=1e-5)
    assert abs(poses[-1].yaw) == pytest.approx(3.0 * 239 / 24, rel=1e-4)


def test_look_around_shows_both_sides_and_returns() -> None:
    focus = np.array([0.0, 0.0, 3.0])
    poses = camera_path([scene_motion(CATALOGUE.get("look-around"), None, 4.0)], [97], 24)
    xs = [p.x for p in poses]
    assert max(xs) > 0.3 and min(xs) < -0.3
    assert xs.index(max(xs)) < xs.index(min(xs))  # right first, then left
    assert abs(poses[-1].x) < 1e-3 and abs(poses[-1].yaw) < 0.01
    for pose in poses[::5]:
        in_camera = pose.world_from_cam_rotation.T @ (focus - pose.position_cv)
        assert np.allclose(in_camera, [0.0, 0.0, 3.0], atol=1e-4)


# --------------------------------------------------------------------------- image motion


def image_flow(name: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of a grid of points at depth 3 before and after the first half second."""
    poses = camera_path([scene_motion(CATALOGUE.get(name), None, 4.0)], [13], 24)
    rotation, translation = relative_move(poses[0], poses[12])
    k = intrinsics(width, height, 40.0)
    u, v = np.meshgrid(np.linspace(0.1, 0.9, 5) * width, np.linspace(0.1, 0.9, 5) * height)
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    points = np.linalg.inv(k) @ pixels * 3.0
    moved = k @ (rotation @ points + translation[:, None])
    return pixels[:2].T, (moved[:2] / moved[2]).T


@pytest.mark.parametrize("size", [(832, 448), (640, 640), (448, 832)])
@pytest.mark.parametrize(
    ("name", "du", "dv"),
    [
        ("right", -1, 0), ("left", 1, 0), ("up", 0, 1), ("down", 0, -1),
        ("turn-right", -1, 0), ("turn-left", 1, 0), ("tilt-up", 0, 1), ("tilt-down", 0, -1),
    ],
)
def test_content_slides_opposite_to_the_camera(
    name: str, du: int, dv: int, size: tuple[int, int]
) -> None:
    before, after = image_flow(name, *size)
    mean = (after - before).mean(axis=0)
    assert np.sign(np.round(mean, 3)).tolist() == [du, dv]


@pytest.mark.parametrize("size", [(832, 448), (640, 640)])
@pytest.mark.parametrize(("name", "grows"), [("zoom-in", True), ("zoom-out", False)])
def test_zoom_spreads_or_gathers_the_picture(name: str, grows: bool, size: tuple[int, int]) -> None:
    before, after = image_flow(name, *size)
    centre = (np.array(size) - 1) / 2
    spread = np.linalg.norm(after - centre, axis=1) / np.linalg.norm(before - centre, axis=1)
    assert (spread.mean() > 1) == grows


@pytest.mark.parametrize(("name", "clockwise"), [("spin-cw", True), ("spin-ccw", False)])
def test_spin_turns_the_picture_as_named(name: str, clockwise: bool) -> None:
    before, after = image_flow(name, 640, 640)
    centre = np.array([319.5, 319.5])
    a, b = before - centre, after - centre
    # screen coordinates have v down, so a positive cross product is clockwise on screen
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    assert (cross.sum() > 0) == clockwise


# --------------------------------------------------------------------------- user folders


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


PRESET = """\
name: {name}
description: {description}
aliases: {aliases}
keyframes:
  - {{t: 0}}
  - {{t: 1, x: 0.2}}
"""


def test_user_folder_adds_and_overrides_presets(tmp_path: Path) -> None:
    write(tmp_path, "sway", PRESET.format(name="sway", description="mine", aliases="[wobble]"))
    write(tmp_path, "zoom-in", PRESET.format(name="zoom-in", description="faster", aliases="[]"))
    catalogue = load_catalogue([tmp_path])
    assert catalogue.get("wobble").name == "sway"
    assert catalogue.get("zoom-in").description == "faster"
    assert catalogue.source("zoom-in") == tmp_path / "zoom-in.yaml"
    assert catalogue.get("zoomin") is None  # the override brings its own aliases
    assert len(catalogue.presets()) == len(EFFECTS + EXTRAS) + 1


def test_later_folder_takes_over_an_alias(tmp_path: Path) -> None:
    write(tmp_path, "my-zoom", PRESET.format(name="my-zoom", description="x", aliases="[zoomin]"))
    catalogue = load_catalogue([tmp_path])
    assert catalogue.get("zoomin").name == "my-zoom"
    assert "zoomin" not in catalogue.aliases_of("zoom-in")


def test_invalid_preset_reports_file_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken",
        "name: broken\ndescription: bad\nkeyframes:\n  - {t: 0}\n  - {t: 1, yaw: fast}\n",
    )
    with pytest.raises(ScreenplayError) as caught:
        load_catalogue([tmp_path])
    [diagnostic] = caught.value.diagnostics
    assert Path(diagnostic.file) == path
    assert (diagnostic.line, diagnostic.col) == (5, 17)
    assert "keyframes key 2: yaw" in str(diagnostic)


def test_every_problem_of_every_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "one", PRESET.format(name="two", description="x", aliases="[]"))
    three = "name: three\ndescription: x\nspan: scene\nkeyframes:\n  - {t: 0}\n  - {t: 2}\n"
    write(tmp_path, "three", three)
    write(tmp_path, "four", "name: four\ndescription: x\nkeyframes:\n  - {t: 1}\n  - {t: 0.5}\n")
    with pytest.raises(ScreenplayError) as caught:
        load_catalogue([tmp_path])
    messages = [str(d) for d in caught.value.diagnostics]
    assert len(messages) == 3
    assert any("one.yaml:1:7: name: the name 'two' must match" in m for m in messages)
    assert any("three.yaml:6:9: keyframes key 2: t: with span: scene" in m for m in messages)
    assert any("four.yaml:5:9: keyframes key 2: t: times must increase" in m for m in messages)


def test_schedule_order_and_depth_range_are_checked(tmp_path: Path) -> None:
    text = (
        "name: odd\ndescription: x\nkeyframes:\n  - {t: 0}\nsettings:\n"
        "  strength:\n    - {t: 1, value: 0.2}\n    - {t: 0, value: 0.5}\n"
        "  near: 5\n  far: 2\n"
    )
    write(tmp_path, "odd", text)
    with pytest.raises(ScreenplayError) as caught:
        load_catalogue([tmp_path])
    found = {(d.path, d.line) for d in caught.value.diagnostics}
    assert found == {("settings.strength.1.t", 8), ("settings.far", 10)}


def test_duplicate_alias_in_a_folder_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a", PRESET.format(name="a", description="x", aliases="[same]"))
    write(tmp_path, "b", PRESET.format(name="b", description="x", aliases="[other, same]"))
    with pytest.raises(ScreenplayError) as caught:
        load_catalogue([tmp_path])
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.file.endswith("b.yaml") and diagnostic.path == "aliases.1"
    assert "already an alias in a.yaml" in diagnostic.message


def test_alias_clashing_with_a_name_in_the_same_folder(tmp_path: Path) -> None:
    write(tmp_path, "a", PRESET.format(name="a", description="x", aliases="[b]"))
    write(tmp_path, "b", PRESET.format(name="b", description="x", aliases="[]"))
    with pytest.raises(ScreenplayError, match="already the name of b.yaml"):
        load_catalogue([tmp_path])


def test_missing_user_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_catalogue([tmp_path / "nowhere"])


# --------------------------------------------------------------------------- the CLI


def test_effects_command_lists_every_effect() -> None:
    result = CliRunner().invoke(app, ["effects"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in EFFECTS + EXTRAS:
        assert name in result.output
    assert "around_right" in result.output and "yaw −3°/s" in result.output


def test_effects_command_shows_one_effect_with_keyframes() -> None:
    result = CliRunner().invoke(app, ["effects", "around_right"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "orbit-right" in result.output and "keyframes" in result.output
    assert "0.157008" in result.output and "strength" in result.output


def test_effects_command_suggests_a_near_miss() -> None:
    result = CliRunner().invoke(app, ["effects", "zoom-ot"])
    assert result.exit_code == 2
    assert "did you mean 'zoom-out'" in result.output


def test_planning_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import kandanim.plan, kandanim.presets, kandanim.screenplay, kandanim.trajectory, "
        "kandanim.planview\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'cv2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
