"""`kandanim import`: Deforum settings and Parseq exports → screenplays.

Small settings are written here, one rule per test: the sign and unit of every 3D and 2D
channel (checked on the planned poses, and on the image motion of a preview render),
integration (frame 0 never applied, independent of cadence), prompts and `--neg`,
strength inversion, the simplifier's tolerance, and the command line's errors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from kandanim.cli import app
from kandanim.engines.preview import PreviewEngine
from kandanim.importers import import_file
from kandanim.importers.deforum import read_settings
from kandanim.importers.motion import Probe, deltas_2d
from kandanim.importers.writer import camera_poses
from kandanim.plan import Plan, build_plan
from kandanim.render import Renderer
from kandanim.screenplay import load_screenplay_text
from kandanim.trajectory import Rigid

FRAMES = 10


def settings(**fields: Any) -> dict[str, Any]:
    """A minimal sd-webui-deforum settings object (128², 10 frames at 10 fps, no motion)."""
    base: dict[str, Any] = {
        "W": 128, "H": 128, "seed": 7, "animation_mode": "3D", "max_frames": FRAMES, "fps": 10,
        "prompts": {"0": "a lighthouse"}, "diffusion_cadence": 1, "strength_schedule": "0: (0.65)",
        "fov_schedule": "0: (70)", "translation_x": "0: (0)", "translation_z": "0: (0)",
        "use_depth_warping": True, "color_coherence": "LAB", "border": "replicate",
    }
    return base | fields


def import_text(tmp_path: Path, data: dict[str, Any], match: str = "screen", name: str = "s.txt"):
    source = tmp_path / name
    source.write_text(json.dumps(data, indent=4))
    return import_file(source, match=match, relative_to=tmp_path)


def plan_of(tmp_path: Path, data: dict[str, Any], match: str = "screen") -> Plan:
    imported = import_text(tmp_path, data, match)
    loaded = load_screenplay_text(imported.text, tmp_path / "s.yaml")
    return build_plan(loaded, engine="preview")


def last_pose(plan: Plan) -> dict[str, float]:
    pose = plan.frames[-1].pose
    return {axis: getattr(pose, axis) for axis in ("x", "y", "z", "yaw", "pitch", "roll")}


def only(pose: dict[str, float], axis: str, expected: float, others: float = 1e-6) -> None:
    assert pose[axis] == pytest.approx(expected, rel=1e-3, abs=1e-6), pose
    for other, value in pose.items():
        if other != axis:
            assert abs(value) < others, (other, pose)


# --------------------------------------------------------------------------- 3D and 2D motion

TAN35 = math.tan(math.radians(35))


@pytest.mark.parametrize(("channel", "value", "axis", "per_frame"), [
    ("translation_x", 10, "x", 10 / 200),  # camera right
    ("translation_y", 10, "y", 10 / 200),  # camera up
    ("translation_z", 10, "z", 10 / 200 / TAN35),  # forward; dolly matched at depth 1
    ("rotation_3d_x", 1.5, "pitch", 1.5),  # tilt up
    ("rotation_3d_y", 1.5, "yaw", 1.5),  # turn right
    ("rotation_3d_z", 1.5, "roll", 1.5),  # roll clockwise (picture counter-clockwise)
])
def test_3d_channels_keep_deforums_signs_in_kandanim_units(
    tmp_path: Path, channel: str, value: float, axis: str, per_frame: float
) -> None:
    plan = plan_of(tmp_path, settings(**{channel: f"0: ({value})"}))
    only(last_pose(plan), axis, per_frame * (FRAMES - 1))


@pytest.mark.parametrize(("channel", "value", "axis", "per_frame"), [
    ("translation_x", 2, "x", -2),  # content right = camera left
    ("translation_y", 2, "y", +2),  # content down = camera up
    ("angle", 1.5, "roll", 1.5),  # picture counter-clockwise = camera rolls clockwise
    ("zoom", 1.02, "z", 1 - 1 / 1.02),  # content expands = dolly in, over a picture at depth 1
])
def test_2d_channels_become_camera_moves_over_a_flat_picture(
    tmp_path: Path, channel: str, value: float, axis: str, per_frame: float
) -> None:
    plan = plan_of(tmp_path, settings(animation_mode="2D", **{channel: f"0: ({value})"}))
    assert plan.scenes[0].depth == "flat"
    focal = 64 / math.tan(math.radians(20))  # kandanim focal at fov 40 on 128-high frames
    scale = 1 / focal if channel.startswith("translation") else 1.0
    # Deforum turns and zooms about pixel (W/2, H/2), half a pixel off the picture's centre:
    # a sideways drift of a few thousandths of a unit comes with them
    only(last_pose(plan), axis, per_frame * scale * (FRAMES - 1), others=2e-3)


def test_translation_x_means_opposite_camera_moves_in_2d_and_3d(tmp_path: Path) -> None:
    in_3d = last_pose(plan_of(tmp_path, settings(translation_x="0: (10)")))["x"]
    in_2d = last_pose(plan_of(tmp_path, settings(animation_mode="2D", translation_x="0: (10)")))["x"]
    assert in_3d > 0 > in_2d


@pytest.mark.parametrize(("angle", "zoom"), [(3.0, 1.0), (0.0, 1.05), (2.0, 0.97)])
def test_2d_transform_centre_is_the_point_that_stays_put(angle: float, zoom: float,
                                                         tmp_path: Path) -> None:
    data = settings(animation_mode="2D", angle=f"0: ({angle})", zoom=f"0: ({zoom})",
                    transform_center_x="0: (0.2)", transform_center_y="0: (0.7)", W=256, H=128)
    animation = read_settings(data, json.dumps(data), "s.txt")
    deltas = deltas_2d(animation, (256, 128), 40.0, "screen")
    probe = Probe((256, 128), 40.0, (1.0,))
    centre = np.array([0.2 * 256, 0.7 * 128])
    probe.points = np.linalg.solve(probe.k, np.array([*centre, 1.0]))[None, :]
    probe.pixels = centre[None, :]
    # the flat picture stays at depth 1 in front of each frame's camera (depth: flat)
    assert np.abs(probe.motion(Rigid.identity(), deltas[1])).max() < 1e-9
    elsewhere = Probe((256, 128), 40.0, (1.0,))
    assert np.abs(elsewhere.motion(Rigid.identity(), deltas[1])).max() > 0.5


def test_frame_zero_is_never_applied_and_cadence_does_not_change_the_path(tmp_path: Path) -> None:
    # frame 0's 100 would be a 0.5-unit jump; frames 1…9 move 10/200 each
    moving = "0: (100), 1: (10)"
    one = plan_of(tmp_path, settings(translation_x=moving, diffusion_cadence=1))
    five = plan_of(tmp_path, settings(translation_x=moving, diffusion_cadence=5))
    assert one.frames[0].pose.x == 0
    only(last_pose(one), "x", 0.05 * (FRAMES - 1))
    assert [f.pose for f in one.frames] == [f.pose for f in five.frames]
    assert five.scenes[0].cadence == 5


def test_match_screen_keeps_deforums_sideways_speed_on_wide_frames(tmp_path: Path) -> None:
    moves = settings(W=256, H=128, translation_x="0: (10)", translation_y="0: (10)")
    screen = last_pose(plan_of(tmp_path, moves, "screen"))
    geometry = last_pose(plan_of(tmp_path, moves, "geometry"))
    assert screen["x"] == pytest.approx(2 * geometry["x"], rel=1e-4)  # W/H = 2
    assert screen["y"] == pytest.approx(geometry["y"], rel=1e-4)
    turns = settings(W=256, H=128, rotation_3d_y="0: (1)", rotation_3d_x="0: (1)")
    screen = last_pose(plan_of(tmp_path, turns, "screen"))
    geometry = last_pose(plan_of(tmp_path, turns, "geometry"))
    assert screen["yaw"] == pytest.approx(2 * geometry["yaw"], rel=0.02)
    assert screen["pitch"] == pytest.approx(geometry["pitch"], rel=0.02)
    data = moves
    assert "--match screen" in import_text(tmp_path, data, "screen").text
    assert "--match geometry" in import_text(tmp_path, data, "geometry").text


# --------------------------------------------------------------------------- image motion


def flow_model(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Affine fit of the dense flow between two frames: translation, divergence, curl (y down;
    curl > 0 is clockwise on screen)."""
    ga, gb = (cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) for x in (a, b))
    flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 3, 9, 5, 5, 1.1, 0)
    height, width = ga.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xs -= (width - 1) / 2
    ys -= (height - 1) / 2
    inner = (slice(8, -8), slice(8, -8))
    design = np.stack([np.ones_like(xs)[inner].ravel(), xs[inner].ravel(), ys[inner].ravel()], 1)
    u = np.linalg.lstsq(design, flow[..., 0][inner].ravel(), rcond=None)[0]
    v = np.linalg.lstsq(design, flow[..., 1][inner].ravel(), rcond=None)[0]
    window = cv2.createHanningWindow((width, height), cv2.CV_64F)
    (sx, _), _ = cv2.phaseCorrelate(ga.astype(np.float64), gb.astype(np.float64), window)
    return {"tx": u[0], "ty": v[0], "div": u[1] + v[2], "curl": v[1] - u[2], "shift": sx}


def preview_motion(tmp_path: Path, data: dict[str, Any], pairs: int = 3) -> dict[str, float]:
    plan = plan_of(tmp_path, data)
    engine = PreviewEngine()
    engine.prepare(plan)
    frames = []
    for _, image in Renderer(plan, engine).frames():
        frames.append(image)
        if len(frames) == pairs + 1:
            break
    fits = [flow_model(frames[i], frames[i + 1]) for i in range(pairs)]
    return {key: float(np.mean([f[key] for f in fits])) for key in fits[0]}


@pytest.mark.parametrize(("mode", "channel", "value", "measure", "sign"), [
    ("3D", "translation_x", 15, "tx", -1),  # camera right: content slides left
    ("3D", "translation_y", 15, "ty", +1),  # camera up: content slides down
    ("3D", "translation_z", 15, "div", +1),  # forward: the picture expands
    ("3D", "rotation_3d_x", 2, "ty", +1),  # tilt up: content slides down
    ("3D", "rotation_3d_y", 2, "tx", -1),  # turn right: content slides left ("Move-Left")
    ("3D", "rotation_3d_z", 3, "curl", -1),  # roll clockwise: picture turns counter-clockwise
    ("2D", "translation_x", 3, "tx", +1),  # content right
    ("2D", "translation_y", 3, "ty", +1),  # content down
    ("2D", "zoom", 1.04, "div", +1),  # zoom in: expands
    ("2D", "angle", 3, "curl", -1),  # counter-clockwise on screen
])
def test_preview_moves_the_picture_the_way_deforum_does(
    tmp_path: Path, mode: str, channel: str, value: float, measure: str, sign: int
) -> None:
    data = settings(animation_mode=mode, use_depth_warping=False, color_coherence="None",
                    **{channel: f"0: ({value})"})
    motion = preview_motion(tmp_path, data)
    assert np.sign(motion[measure]) == sign, motion
    others = {"tx", "ty"} - {measure}
    if measure in ("tx", "ty"):  # a slide is a slide: the other direction barely moves
        assert all(abs(motion[o]) < 0.35 * abs(motion[measure]) for o in others), motion


def test_preview_speed_matches_deforums_pixels_per_frame(tmp_path: Path) -> None:
    # REALWORLD §A.4: translation_x 10 on 128 px, fov 70, depth 1 → 10·128/(400·tan 35°) px
    expected = 10 * 128 / (400 * TAN35)
    data = settings(use_depth_warping=False, color_coherence="None", translation_x="0: (10)")
    assert -preview_motion(tmp_path, data)["shift"] == pytest.approx(expected, rel=0.1)
    data_2d = settings(animation_mode="2D", color_coherence="None", translation_x="0: (3)")
    assert preview_motion(tmp_path, data_2d)["shift"] == pytest.approx(3, rel=0.1)


# --------------------------------------------------------------------------- simplifying


def test_dense_keys_are_simplified_within_half_a_pixel_per_frame(tmp_path: Path) -> None:
    frames = 240
    dense = {
        "translation_x": ", ".join(f"{n}: ({3 * math.sin(n / 20):.6f})" for n in range(frames)),
        "rotation_3d_y": ", ".join(f"{n}: ({0.4 * math.cos(n / 30):.6f})" for n in range(frames)),
        "translation_z": ", ".join(f"{n}: ({2 + math.sin(n / 15):.6f})" for n in range(frames)),
    }
    data = settings(W=256, H=128, max_frames=frames, fps=24, **dense)
    plan = plan_of(tmp_path, data)
    animation = read_settings(data, json.dumps(data), "s.txt")
    exact = camera_poses(animation, (256, 128), "screen")
    planned = [Rigid.from_pose(f.pose) for f in plan.frames]
    probe = Probe((256, 128), 70.0, (1.0, 2.0))
    motion_error = max(
        np.abs(probe.motion(planned[n - 1], planned[n]) - probe.motion(exact[n - 1], exact[n])).max()
        for n in range(1, frames))
    position_error = max(np.abs(probe.land(exact[n], planned[n]) - probe.pixels).max()
                         for n in range(frames))
    keys = import_text(tmp_path, data).text.count("{t:")
    assert motion_error <= 0.5 + 0.01  # + YAML's rounding of the keys
    assert position_error <= 1.0 + 0.01
    assert keys < frames / 4, keys


# --------------------------------------------------------------------------- prompts and look


def test_prompts_become_scenes_with_negatives_combined_as_deforum_does(tmp_path: Path) -> None:
    data = settings(max_frames=40, prompts={"0": "a cat --neg blurry", "10": "a dog",
                                            "25": "a dog", "50": "never shown"},
                    positive_prompts="oil painting,", negative_prompts="text")
    imported = import_text(tmp_path, data)
    plan = build_plan(load_screenplay_text(imported.text, tmp_path / "s.yaml"), engine="preview")
    assert [(s.prompt, s.negative_prompt) for s in plan.scenes] == [
        ("oil painting, a cat", "blurry, text"), ("oil painting, a dog", "text")]
    assert [(s.start, s.stop) for s in plan.scenes] == [(0, 10), (10, 40)]
    assert plan.scenes[1].transition_in == "cut"  # Deforum switches prompts hard
    assert any("prompts at frames 50" in w for w in imported.warnings)


def test_an_empty_prompt_gets_a_placeholder_and_a_warning(tmp_path: Path) -> None:
    imported = import_text(tmp_path, settings(prompts={"0": ""}))
    assert 'prompt: "describe this scene"' in imported.text
    assert any("prompt at frame 0 is empty" in w for w in imported.warnings)


def test_strength_is_inverted_for_deforum_and_kept_for_deforum_kandinsky(tmp_path: Path) -> None:
    swd = plan_of(tmp_path, settings(strength_schedule="0: (0.65)"))
    assert swd.frames[0].strength == pytest.approx(0.35)
    dk = plan_of(tmp_path, settings(strength_schedule="0: (0.1)", prompt_durations=[1]))
    assert dk.frames[0].strength == pytest.approx(0.1)
    keyed = plan_of(tmp_path, settings(strength_schedule="0: (0.6), 9: (0.2)"))
    assert [round(f.strength, 4) for f in keyed.frames][::3] == [0.4, 0.5333, 0.6667, 0.8]


def test_look_settings_are_carried_over(tmp_path: Path) -> None:
    (tmp_path / "start.png").write_bytes(b"not checked here")
    (tmp_path / "song.mp3").write_bytes(b"")
    data = settings(W=1280, H=720, fps=30, seed=123, diffusion_cadence=3, fov_schedule="0: (45)",
                    color_coherence="None", use_init=True, init_image="start.png",
                    add_soundtrack="File", soundtrack_path="song.mp3")
    imported = import_text(tmp_path, data)
    text = imported.text
    for line in ('resolution: "1280x704"', "fps: 30", "seed: 123", "cadence: 3", "fov: 45.0",
                 "colour_coherence: false", 'init_image: "start.png"', 'path: "song.mp3"'):
        assert line in text, line
    assert "size 1280x720 → 1280x704" in text


def test_settings_kandanim_cannot_honour_are_listed_once_grouped(tmp_path: Path) -> None:
    data = settings(hybrid_motion="Optical Flow", cn_1_enabled=True, cn_2_enabled=True,
                    enable_perspective_flip=True, noise_schedule="0: (0.02)",
                    contrast_schedule="0: (1.0)", shake_name="INVESTIGATION", shake_intensity=1.0)
    imported = import_text(tmp_path, data)
    joined = "\n".join(imported.warnings)
    for expected in ("hybrid video", "ControlNet: ControlNet 1", "ControlNet 2",
                     "perspective flip", "noise added to every frame", "camera shake"):
        assert expected in joined, expected
    assert "contrast" not in joined.replace("noise and contrast", "")  # default value: not listed
    assert len(imported.warnings) == len({w.split(":")[0] for w in imported.warnings})
    header = imported.text.split("version: 1")[0]
    assert all(line in header for line in imported.warnings[:1])


def test_a_parseq_export_uses_its_deltas_fps_and_cadence(tmp_path: Path) -> None:
    rendered = [{"frame": n, "translation_x": 2.0 * n, "translation_x_delta": 2.0 if n else 0.0,
                 "rotation_3d_y": 0.0, "strength": 0.7, "seed": 5,
                 "deforum_prompt": ("a cave --neg fog" if n < 4 else "a sea")} for n in range(8)]
    data = {"meta": {"version": "0.1.94"}, "options": {"output_fps": 8, "cadence": 2},
            "rendered_frames": rendered}
    imported = import_text(tmp_path, data, name="p.json")
    plan = build_plan(load_screenplay_text(imported.text, tmp_path / "p.yaml"), engine="preview")
    assert plan.fps == 8 and plan.scenes[0].cadence == 2
    assert [(s.prompt, s.negative_prompt) for s in plan.scenes] == [("a cave", "fog"), ("a sea", "")]
    only(last_pose(plan), "x", 2.0 / 200 * 7)
    assert plan.frames[0].strength == pytest.approx(0.3)


# --------------------------------------------------------------------------- command line

runner = CliRunner()


def test_cli_writes_yaml_to_stdout_or_to_a_file(tmp_path: Path) -> None:
    source = tmp_path / "bunny_settings.txt"
    source.write_text(json.dumps(settings(translation_z="0: (1.75)", cn_1_enabled=True)))
    result = runner.invoke(app, ["import", str(source)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# Imported by `kandanim import` from bunny_settings.txt")
    assert "warning: not honoured: ControlNet" in result.stderr
    target = tmp_path / "bunny.yaml"
    result = runner.invoke(app, ["import", str(source), "-o", str(target)])
    assert result.exit_code == 0 and result.stdout.strip() == str(target)
    result = runner.invoke(app, ["import", str(source), "-o", str(target)])
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert runner.invoke(app, ["validate", str(target)]).exit_code == 0


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "not a Deforum settings file or a Parseq export"),
    (json.dumps(settings(animation_mode="Video Input")), "animation_mode: 'Video Input' has no"),
    (json.dumps(settings(rotation_3d_x="0: (__import__('os').getcwd())")),
     "rotation_3d_x: character 4: refused expression: '__import__('os').getcwd(…)' is not"),
    (json.dumps(settings(zoom="0: 0: (t)")), "zoom: character 5: malformed pair"),
    (json.dumps(settings(max_frames=10**9)), "max_frames: must be between 1 and 20000"),
    (json.dumps(settings(fov_schedule="0: (-30)")), "fov -30 at frame 0"),
])
def test_cli_refuses_bad_input_with_exit_2_and_no_traceback(tmp_path: Path, content: str,
                                                            message: str) -> None:
    source = tmp_path / "s.txt"
    source.write_text(content)
    result = runner.invoke(app, ["import", str(source)])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


def test_field_errors_point_at_the_line_of_the_field(tmp_path: Path) -> None:
    source = tmp_path / "s.txt"
    source.write_text(json.dumps(settings(zoom="0: (1), 9: (1 +* 2)"), indent=4))
    result = runner.invoke(app, ["import", str(source)])
    line = next(i for i, text in enumerate(source.read_text().splitlines(), 1) if '"zoom"' in text)
    assert f"s.txt:{line}:" in result.stderr


def test_render_takes_a_deforum_file_directly(tmp_path: Path) -> None:
    source = tmp_path / "bunny_settings.txt"
    source.write_text(json.dumps(settings(max_frames=4, translation_x="0: (5)", cn_1_enabled=True)))
    video = tmp_path / "bunny.mp4"
    result = runner.invoke(app, ["render", str(source), "--engine", "preview", "-o", str(video),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    assert video.is_file() and result.stdout.strip() == str(video)
    assert "not honoured: ControlNet" in result.stderr


def test_stable_diffusion_prompt_syntax_is_removed_with_a_warning(tmp_path: Path) -> None:
    data = settings(prompts={"0": "jungle <lora:tbh128-sdxl:1>, a (red:1.3) monkey (by Rousseau) "
                                  "--neg (((text, watermark)))"})
    imported = import_text(tmp_path, data)
    assert 'prompt: "jungle, a red monkey (by Rousseau)"' in imported.text
    assert 'negative_prompt: "text, watermark"' in imported.text
    warning = next(w for w in imported.warnings if w.startswith("prompt syntax"))
    assert "LoRA" in warning and "(word:weight)" in warning and "emphasis" in warning


def test_older_and_renamed_dialects_are_read(tmp_path: Path) -> None:
    studio = settings(width=256, height=128, animation_prompts_positive="ink drawing,",
                      animation_prompts_negative="photo", sampler_name="dpmpp_2m")
    del studio["W"], studio["H"]
    imported = import_text(tmp_path, studio)
    assert imported.kind == "deforum-studio (new format) (3D)"
    assert 'resolution: "256x128"' in imported.text
    assert 'prompt: "ink drawing, a lighthouse"' in imported.text
    assert 'negative_prompt: "photo"' in imported.text
    colab = {"animation_mode": "3D", "max_frames": 6, "fps": 12, "W": 128, "H": 128,
             "diffusion_cadence": "3", "near_plane": 200, "far_plane": 10000, "fov": 40,
             "flip_2d_perspective": True, "color_coherence": "Match Frame 0 LAB",
             "cond_prompts": {"0": "a harbour"}, "uncond_prompts": {"0": "blurry"},
             "translation_z": "0: (2)", "strength_schedule": "0: (0.6)", "seed": 3}
    imported = import_text(tmp_path, colab)
    assert imported.kind.startswith("old Colab")
    plan = build_plan(load_screenplay_text(imported.text, tmp_path / "c.yaml"), engine="preview")
    assert plan.scenes[0].cadence == 3 and plan.frames[0].fov == 40
    assert (plan.scenes[0].prompt, plan.scenes[0].negative_prompt) == ("a harbour", "blurry")
    assert plan.frames[-1].pose.z == pytest.approx(2 / 200 / math.tan(math.radians(20)) * 5)
    assert any(w.startswith("perspective flip") for w in imported.warnings)
