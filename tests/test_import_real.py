"""Every real Deforum file people published imports, validates and previews.

The files live outside the project (../shared/deforum-settings/, provenance in its
SOURCES.md; third-party data that must not be copied in). Set KANDANIM_DEFORUM_SETTINGS
to read them from elsewhere; without them these tests skip, saying so.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_import import preview_motion

from kandanim.engines.preview import PreviewEngine
from kandanim.errors import UserError
from kandanim.importers import import_file
from kandanim.importers.deforum import read_settings
from kandanim.plan import build_plan
from kandanim.render import Renderer
from kandanim.screenplay import load_screenplay_text

FOLDER = Path(os.environ.get("KANDANIM_DEFORUM_SETTINGS")
              or Path(__file__).resolve().parents[2] / "shared" / "deforum-settings")
FILES = sorted(p.name for p in FOLDER.glob("*") if p.suffix in (".txt", ".json", ".csv")) \
    if FOLDER.is_dir() else []
REFUSED = {"s4f3tymarc-classic-double-key.txt": "rotation_3d_x"}  # "0: 0: (expr)"
PREVIEW_FRAMES = 8

pytestmark = pytest.mark.skipif(
    not FILES, reason=f"the real Deforum files are not here ({FOLDER}); "
    "set KANDANIM_DEFORUM_SETTINGS to their folder")


def source(name: str) -> Path:
    path = FOLDER / name
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def expected_frames(path: Path, data: object) -> int | None:
    if isinstance(data, dict) and "rendered_frames" in data:
        return len(data["rendered_frames"])
    if isinstance(data, dict) and "max_frames" in data:
        return int(data["max_frames"])
    return None


@pytest.mark.slow
@pytest.mark.parametrize("name", FILES or ["none"])
def test_every_real_file_imports_validates_and_previews(name: str, tmp_path: Path) -> None:
    path = source(name)
    if name in REFUSED:
        with pytest.raises(UserError) as caught:
            import_file(path, relative_to=tmp_path)
        assert re.search(rf"{re.escape(name)}:\d+:\d+: {REFUSED[name]}: character \d+:",
                         caught.value.message)
        return
    imported = import_file(path, relative_to=tmp_path)
    assert imported.text.startswith(f"# Imported by `kandanim import` from {name}")
    loaded = load_screenplay_text(imported.text, tmp_path / "imported.yaml")
    plan = build_plan(loaded, engine="preview")
    try:
        data = json.loads(path.read_text())
    except ValueError:
        data = None
    frames = expected_frames(path, data)
    if frames is not None:
        assert plan.frame_count == frames
    # a preview of the start, on small frames of the same shape (the plan is the real one)
    small = re.sub(r'resolution: "(\d+)x(\d+)"', lambda m: _small(int(m[1]), int(m[2])),
                   imported.text)
    small_plan = build_plan(load_screenplay_text(small, tmp_path / "small.yaml"), engine="preview")
    engine = PreviewEngine()
    engine.prepare(small_plan)
    images = []
    for _, image in Renderer(small_plan, engine).frames():
        images.append(image)
        if len(images) == min(PREVIEW_FRAMES, small_plan.frame_count):
            break
    assert all(np.isfinite(i).all() and i.std() > 1 for i in images)


def _small(width: int, height: int) -> str:
    scale = 128 / max(width, height)
    return f'resolution: "{max(64, round(width * scale / 64) * 64)}x{max(64, round(height * scale / 64) * 64)}"'


def test_move_left_turns_the_camera_right_and_slides_the_content_left(tmp_path: Path) -> None:
    path = source("s4f3tymarc-move-left.txt")
    plan = build_plan(load_screenplay_text(import_file(path).text, tmp_path / "m.yaml"),
                      engine="preview")
    assert plan.frames[-1].pose.yaw == pytest.approx(1.8 * (plan.frame_count - 1), rel=1e-4)
    data = json.loads(path.read_text()) | {"W": 128, "H": 128, "max_frames": 6,
                                           "color_coherence": "None", "use_depth_warping": False}
    assert preview_motion(tmp_path, data)["tx"] < -1.0  # px per frame: content slides left


def test_dense_per_frame_export_uses_its_150_frames_and_says_what_it_ignored() -> None:
    imported = import_file(source("webpilot-dense-per-frame-keys.txt"))
    assert any("5851 keys at frames 150…6000" in w for w in imported.warnings)
    keys = imported.text.count("{t:")
    assert keys < 150, keys  # 6001 keys per field in the file


def test_spacewalk_expression_segments_match_deforums_algorithm() -> None:
    path = source("s4f3tymarc-spacewalk.txt")
    data = json.loads(path.read_text())
    animation = read_settings(data, path.read_text(), path.name)
    x = animation.motion["translation_x"]

    def segment(t: float) -> float:  # the 60: key's expression, written out by hand
        return ((4.00 * math.cos((120 / 960 * 3.141 * (t + 0) / 24)) ** 11 + 0)
                * (1.75 * math.cos(120 / 120 * 3.141 * (t + 7) / 24) ** 1 + 0))

    assert x[:60].tolist() == [0.0] * 60  # 0: (0), 59: (0)
    assert np.allclose(x[60:90], [segment(t) for t in range(60, 90)])
    assert x[90:].tolist() == [0.0] * (len(x) - 90)  # 90: (0) holds to the end
    z = animation.motion["translation_z"]
    assert z[0] == 0.0 and z[1] == 0.5  # dense numeric keys


def test_forge_defaults_keep_size_fps_cadence_and_report_the_shake() -> None:
    imported = import_file(source("tok-forge-default-settings.txt"))
    for line in ('resolution: "1280x704"', "fps: 60", "cadence: 10", "colour_coherence: false"):
        assert line in imported.text, line
    assert any(w.startswith("camera shake: shake 'INVESTIGATION'") for w in imported.warnings)


def test_parseq_export_rolls_with_its_angle(tmp_path: Path) -> None:
    path = source("parseq-swd-testdata.json")
    data = json.loads(path.read_text())
    plan = build_plan(load_screenplay_text(import_file(path).text, tmp_path / "p.yaml"),
                      engine="preview")
    assert plan.fps == 60 and plan.frame_count == 11 and plan.scenes[0].cadence == 2
    angles = [f["angle"] for f in data["rendered_frames"]]
    assert [round(f.pose.roll, 3) for f in plan.frames] == [round(a, 3) for a in angles]
    assert plan.scenes[0].prompt == "Parseq prompt!"
    assert plan.scenes[0].negative_prompt == "neg parseq prompt!"


def test_swd_defaults_ignore_the_2d_zoom_in_3d_and_invert_strength(tmp_path: Path) -> None:
    path = source("swd-default-settings.txt")
    plan = build_plan(load_screenplay_text(import_file(path).text, tmp_path / "d.yaml"),
                      engine="preview")
    assert [s.stop - s.start for s in plan.scenes] == [30, 30, 30, 30]
    assert [f.strength for f in plan.frames] == [pytest.approx(0.35)] * 120
    last = plan.frames[-1].pose
    assert last.z == pytest.approx(1.75 / 200 / math.tan(math.radians(35)) * 119, rel=1e-4)
    assert abs(last.x) + abs(last.yaw) + abs(last.roll) < 1e-6
