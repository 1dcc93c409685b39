"""Camera-path plots: the arrays handed to matplotlib equal the plan; files; CLI contract."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kandanim.cli import app
from kandanim.errors import UserError
from kandanim.pictures.effect_plans import effect_keys, effect_plan, show_seconds
from kandanim.pictures.plot import (
    DPI,
    FIGURE_INCHES,
    MAX_FRAME_TICKS,
    check_plot_path,
    diffused_share,
    frustum_segments,
    plan_figure,
    plot_data,
    write_effect_plot,
    write_plot,
)
from kandanim.plan import Plan, build_plan
from kandanim.presets import load_catalogue
from kandanim.screenplay import from_mapping
from kandanim.trajectory import AXES

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = load_catalogue()


def make_plan(scenes: list[dict[str, Any]], fps: int = 8, **top: Any) -> Plan:
    document = {
        "version": 1, "fps": fps, "seed": 5, "resolution": "128x64",
        "transition": {"type": "dissolve", "duration": 0.5}, "scenes": scenes, **top,
    }
    return build_plan(from_mapping(document, base_dir=Path.cwd(), name="<test>"))


@pytest.fixture(scope="module")
def plan() -> Plan:
    """Three scenes: a rate effect, an orbit with cadence 3 and a strength schedule, a
    custom camera after a cut."""
    return make_plan([
        {"prompt": "a", "effect": "zoom-in", "duration": 2},
        {"prompt": "b", "effect": "orbit-right", "duration": 3, "cadence": 3,
         "strength": [{"t": 0, "value": 0.4}, {"t": 3, "value": 0.1}]},
        {"prompt": "c", "duration": 2, "transition": {"type": "cut"},
         "camera": [{"t": 0}, {"t": 2, "y": 0.5, "pitch": 10, "roll": -5}]},
    ])


def by_gid(ax: Any, gid: str) -> Any:
    found = [a for a in ax.get_children() if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {found}"
    return found[0]


def artist(figure: Any, gid: str) -> Any:
    found = [a for ax in figure.axes for a in ax.get_children() if a.get_gid() == gid]
    assert found, gid
    return found


# --------------------------------------------------------------------------- data = plan


def test_data_is_the_plan(plan: Plan) -> None:
    data = plot_data(plan)
    frames = plan.frames
    assert data.t.tolist() == [f.t for f in frames]
    for i, axis in enumerate(AXES):
        assert data.channels[:, i].tolist() == [getattr(f.pose, axis) for f in frames]
    assert data.strength.tolist() == [f.strength for f in frames]
    assert data.diffused.tolist() == [f.diffuse for f in frames]
    assert not data.diffused.all()  # cadence 3 leaves frames out
    assert [(b.start, b.stop) for b in data.scenes] == [
        (s.start / plan.fps, s.stop / plan.fps) for s in plan.scenes
    ]
    assert [b.label for b in data.scenes] == [
        "1 zoom-in", "2 orbit-right, cadence 3", "3 camera"
    ]
    # one dissolve window (the cut has none) covering exactly the blended frames
    blended = [f.index for f in frames if f.blend_to is not None]
    assert len(data.transitions) == 1 and data.transitions[0].label == "dissolve"
    window = data.transitions[0]
    assert (window.start, window.stop) == (blended[0] / plan.fps, (blended[-1] + 1) / plan.fps)
    assert data.frustum_frames.tolist() == list(range(0, len(frames), plan.fps))


def test_figure_draws_the_data(plan: Plan) -> None:
    data = plot_data(plan)
    figure = plan_figure(data)
    for i, axis in enumerate(AXES):
        (line,) = artist(figure, f"channel-{axis}")
        assert np.array_equal(line.get_xdata(), data.t)
        assert np.array_equal(line.get_ydata(), data.channels[:, i])
    (strength,) = artist(figure, "strength")
    assert np.array_equal(strength.get_ydata(), data.strength)
    (ticks,) = artist(figure, "diffused")
    xs = [segment[0][0] for segment in ticks.get_segments()]
    assert np.allclose(xs, data.t[data.diffused])
    for (a, b), view in zip([(0, 2), (2, 1)], figure.axes[-2:], strict=True):
        for scene in data.scenes:  # each scene's stretch, joined to the next scene's start
            line = by_gid(view, f"path-{scene.scene}")
            frames = [f.index for f in plan.frames if f.scene == scene.scene]
            if scene.scene + 1 < len(data.scenes):
                frames.append(frames[-1] + 1)
            assert np.array_equal(line.get_xdata(), data.channels[frames, a])
            assert np.array_equal(line.get_ydata(), data.channels[frames, b])
        drawn = by_gid(view, "frustums").get_xydata().reshape(-1, 3, 2)
        assert np.isnan(drawn[:, 2]).all()  # a break after every edge
        assert np.allclose(drawn[:, :2], data.frustums[:, :, :, [a, b]].reshape(-1, 2, 2))
    assert len(artist(figure, "scene-bands")) == 8  # on every time panel
    assert len(artist(figure, "transition-bands")) == 8


def test_long_plans_show_the_diffused_share_per_scene() -> None:
    long = make_plan(
        [{"prompt": "a", "effect": "zoom-in", "duration": 14, "cadence": 4},
         {"prompt": "b", "effect": "up", "duration": 14}],
        fps=24,
    )
    assert long.frame_count > MAX_FRAME_TICKS
    data = plot_data(long)
    share = diffused_share(data)
    first = [f.diffuse for f in long.frames if f.scene == 0]
    assert share.tolist() == [sum(first) / len(first), 1.0]
    figure = plan_figure(data)
    bars = artist(figure, "diffused-share")  # one rectangle per scene
    assert [p.get_height() for p in bars] == share.tolist()
    assert [p.get_x() for p in bars] == [b.start for b in data.scenes]


def test_effect_keys_are_drawn_and_lie_on_the_curve() -> None:
    """For every built-in effect: the diamonds are its keyframes, and where a key falls on
    a frame the planned camera is exactly there (keys and interpolation agree)."""
    drawn = {"dive-in", "look-around", "rotate-360"}  # drawing is slow: check three
    for preset in CATALOGUE.presets():
        seconds = show_seconds(preset)
        plan = effect_plan(preset, duration=seconds)
        keys = effect_keys(preset, seconds)
        data = plot_data(plan, keys)
        if preset.name in drawn:
            figure = plan_figure(data)
            for i, axis in enumerate(AXES):
                (marks,) = artist(figure, f"keys-{axis}")
                assert np.array_equal(marks.get_xdata(), [k.t for k in keys])
                assert np.array_equal(marks.get_ydata(), [k.values[i] for k in keys])
        for key in keys:
            index = key.t * plan.fps
            if abs(index - round(index)) > 1e-9 or round(index) >= plan.frame_count:
                continue
            assert np.allclose(data.channels[round(index)], key.values, atol=1e-6), (
                preset.name, key,
            )


# --------------------------------------------------------------------------- geometry


def test_frustum_points_where_the_camera_looks() -> None:
    half = math.tan(math.radians(40) / 2)
    ahead = frustum_segments(np.zeros(6), 40.0, 2.0, 1.0)
    assert ahead.shape == (8, 2, 3)
    corners = ahead[:4, 1]
    assert np.allclose(ahead[:4, 0], 0.0)  # edges start at the camera centre
    assert np.allclose(corners[:, 2], 1.0)
    assert np.allclose(sorted(set(np.round(corners[:, 0], 9))), [-2 * half, 2 * half])
    assert np.allclose(sorted(set(np.round(corners[:, 1], 9))), [-half, half])
    right = frustum_segments(np.array([1.0, 2.0, 3.0, 90.0, 0.0, 0.0]), 40.0, 1.0, 1.0)
    assert np.allclose(right[:4, 0], [1.0, 2.0, 3.0])
    assert np.allclose(right[:4, 1, 0], 2.0)  # yaw +90 looks along +x
    up = frustum_segments(np.array([0.0, 0.0, 0.0, 0.0, 30.0, 0.0]), 10.0, 1.0, 1.0)
    assert (up[:4, 1, 1] > 0).all()  # pitch up: every corner above the camera


# --------------------------------------------------------------------------- files


def test_png_and_svg_files(plan: Plan, tmp_path: Path) -> None:
    png = write_plot(plan, tmp_path / "plan.png")
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (round(FIGURE_INCHES[0] * DPI), round(FIGURE_INCHES[1] * DPI))
        assert image.size[0] >= 1600
    svg = write_plot(plan, tmp_path / "plan.SVG")
    document = xml.dom.minidom.parse(str(svg))
    assert document.documentElement.tagName == "svg"
    again = write_plot(plan, tmp_path / "again.svg")
    assert again.read_bytes() == svg.read_bytes()  # reproducible: no date, fixed ids


@pytest.mark.parametrize("name", ["plan.jpg", "plan", "plan.pdf", "plan.png.txt"])
def test_unknown_extensions_are_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"as \.png or \.svg, not") as refused:
        check_plot_path(tmp_path / name)
    assert refused.value.exit_code == 2


def test_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        check_plot_path(tmp_path / "nowhere" / "plan.png")


def test_effect_plot_by_alias(tmp_path: Path) -> None:
    out = write_effect_plot(CATALOGUE, "around_right", tmp_path / "orbit.png")
    assert out.stat().st_size > 10_000
    with pytest.raises(UserError, match="did you mean 'zoom-out'"):
        write_effect_plot(CATALOGUE, "zoom-ot", tmp_path / "z.png")


# --------------------------------------------------------------------------- command line


def test_plan_plot_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "demo.svg"
    result = runner.invoke(app, ["plan", str(ROOT / "scenes" / "demo.yaml"), "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out) and out.stat().st_size > 10_000
    with_json = runner.invoke(
        app, ["plan", str(ROOT / "scenes" / "demo.yaml"), "--json", "--plot", str(out)]
    )
    assert with_json.exit_code == 0
    assert json.loads(with_json.stdout)["frames"] == 144  # stdout stays pure JSON


@pytest.mark.parametrize(
    "arguments",
    [
        ["plan", str(ROOT / "scenes" / "demo.yaml"), "--plot", "{tmp}/plan.jpg"],
        ["effects", "zoom-in", "--plot", "{tmp}/zoom.gif"],
        ["effects", "--plot", "{tmp}/zoom.png"],
        ["effects", "zoom-in", "--gallery", "{tmp}/gallery"],
        ["effects", "--image", "{tmp}/photo.png"],
        ["effects", "--resolution", "64x64"],
    ],
)
def test_bad_plot_options_exit_2(arguments: list[str], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in arguments])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_plot_needs_no_torch_and_no_display(tmp_path: Path) -> None:
    """`plan --plot` in a fresh process with no DISPLAY: torch is never imported."""
    out = tmp_path / "plan.png"
    code = (
        "import sys\n"
        "from kandanim.cli import app\n"
        "try:\n"
        f"    app(['plan', {str(ROOT / 'scenes' / 'demo.yaml')!r}, '--plot', {str(out)!r}])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "False"]
    assert out.stat().st_size > 10_000
