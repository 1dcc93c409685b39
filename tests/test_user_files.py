"""Never harm the user's files (SPEC §8): kandanim replaces only what it wrote itself and
never writes onto an input of the same render, through the CLI, with inputs a user has."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cli_run import kandanim
from PIL import Image

SCRIPT = """\
version: 1
fps: 12
resolution: 64x64
seed: 3
engine: preview
scenes:
  - prompt: "a valley"
    effect: zoom-in
    duration: 0.5
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def phone_video(path: Path, seconds: float = 1.0, fmt: str | None = None) -> Path:
    """A user's own clip with picture and sound, as a phone would save it."""
    rate, fps = 48_000, 10
    with av.open(str(path), "w", format=fmt) as container:
        video = container.add_stream("libx264" if path.suffix == ".mp4" else "libvpx-vp9", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("aac" if path.suffix == ".mp4" else "libopus", rate=rate)
        for i in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * i, np.uint8), "rgb24")
            container.mux(video.encode(frame))
        samples = (0.3 * np.sin(np.arange(round(seconds * rate)) / 10)).astype(np.float32)
        step = 1024
        for start in range(0, len(samples) - step, step):
            chunk = av.AudioFrame.from_ndarray(samples[None, start:start + step], "fltp", "mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return path


def party_gif(path: Path) -> Path:
    """A user's animated GIF."""
    frames = [Image.new("RGB", (64, 64), (40 * i, 90, 200 - 40 * i)) for i in range(4)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_the_default_output_that_is_the_soundtrack_is_refused_even_with_force(
    tmp_path: Path,
) -> None:
    clip = phone_video(tmp_path / "clip.mp4")
    before = digest(clip)
    script = tmp_path / "clip.yaml"
    script.write_text(SCRIPT + "audio: {path: clip.mp4}\n")
    for extra in ((), ("--force",)):
        result = kandanim("render", script, *extra)
        assert result.returncode == 2, result.stderr
        assert "soundtrack" in result.stderr and "Traceback" not in result.stderr
        assert digest(clip) == before
    assert not (tmp_path / "clip.json").exists()


def test_a_users_video_is_not_replaced_without_force(tmp_path: Path) -> None:
    holiday = phone_video(tmp_path / "holiday.mp4")
    before = digest(holiday)
    script = tmp_path / "other.yaml"
    script.write_text(SCRIPT)
    result = kandanim("render", script, "-o", holiday)
    assert result.returncode == 2 and "--force" in result.stderr
    assert "did not write" in result.stderr and "Traceback" not in result.stderr
    assert digest(holiday) == before
    forced = kandanim("render", script, "-o", holiday, "--force")
    assert forced.returncode == 0, forced.stderr
    assert digest(holiday) != before


def test_a_users_webm_and_frame_folder_are_not_replaced(tmp_path: Path) -> None:
    script = tmp_path / "other.yaml"
    script.write_text(SCRIPT)
    webm = phone_video(tmp_path / "talk.webm", fmt="webm")
    before = digest(webm)
    result = kandanim("render", script, "-o", webm)
    assert result.returncode == 2 and digest(webm) == before
    shots = tmp_path / "shots"
    shots.mkdir()
    Image.new("RGB", (8, 8)).save(shots / "000000.png")  # frames from another tool
    result = kandanim("render", script, "-o", f"{shots}/")
    assert result.returncode == 2 and "--force" in result.stderr
    assert sorted(p.name for p in shots.iterdir()) == ["000000.png"]


def test_an_init_image_is_never_the_output(tmp_path: Path) -> None:
    party = party_gif(tmp_path / "party.gif")
    before = digest(party)
    script = tmp_path / "party.yaml"
    script.write_text(SCRIPT.replace('effect: zoom-in', 'effect: zoom-in\n    init_image: party.gif'))
    for extra in ((), ("--force",)):
        result = kandanim("render", script, "-o", party, *extra)
        assert result.returncode == 2, result.stderr
        assert "init image" in result.stderr and "Traceback" not in result.stderr
        assert digest(party) == before


def test_the_screenplay_is_never_the_output_nor_its_sidecar(tmp_path: Path) -> None:
    script = tmp_path / "film.json"  # YAML reads JSON: its sidecar would be film.json
    script.write_text(json.dumps({
        "version": 1, "fps": 12, "resolution": "64x64", "engine": "preview", "seed": 1,
        "scenes": [{"prompt": "p", "effect": "zoom-in", "duration": 0.5}],
    }))
    before = digest(script)
    result = kandanim("render", script, "--force")
    assert result.returncode == 2 and "screenplay" in result.stderr
    assert digest(script) == before


def test_rendering_again_over_our_own_output_needs_no_force(tmp_path: Path) -> None:
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    for target in (tmp_path / "a.mp4", tmp_path / "b.gif", tmp_path / "c.webm", f"{tmp_path}/frames/"):
        for _ in range(2):
            result = kandanim("render", script, "-o", target)
            assert result.returncode == 0, result.stderr
    result = kandanim("render", script)  # the default output, twice
    assert kandanim("render", script).returncode == 0 and result.returncode == 0


def test_preview_protects_the_users_files_too(tmp_path: Path) -> None:
    holiday = phone_video(tmp_path / "holiday.mp4")
    party = party_gif(tmp_path / "party.gif")
    before = (digest(holiday), digest(party))
    common = ("preview", "--duration", "0.25", "--resolution", "64x64", "--fps", "8")
    result = kandanim(*common, "-o", holiday)
    assert result.returncode == 2 and "--force" in result.stderr
    result = kandanim(*common, "--image", party, "-o", party, "--force")
    assert result.returncode == 2 and "init image" in result.stderr
    assert (digest(holiday), digest(party)) == before
    again = [kandanim(*common, "-o", tmp_path / "p.mp4") for _ in range(2)]
    assert [r.returncode for r in again] == [0, 0], again[-1].stderr


@pytest.mark.parametrize("name", ["notes.mp4", "notes.gif"])
def test_a_video_whose_sidecar_describes_another_file_is_not_ours(
    tmp_path: Path, name: str
) -> None:
    """Our sidecar next to a file the user later saved under the same name."""
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    target = tmp_path / name
    assert kandanim("render", script, "-o", target).returncode == 0
    if target.suffix == ".mp4":
        phone_video(target)
    else:
        party_gif(target)
    before = digest(target)
    result = kandanim("render", script, "-o", target)
    assert result.returncode == 2 and digest(target) == before


# ----------------------------------------------------------------------------- batches


def batch(tmp_path: Path) -> list[Path]:
    scripts = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(SCRIPT if name != "c" else SCRIPT.replace("zoom-in", "zoom-ni"))
        scripts.append(path)
    return scripts


def test_a_batch_reports_every_broken_script_before_it_renders_anything(tmp_path: Path) -> None:
    scripts = batch(tmp_path)
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "kandanim", "render", *map(str, scripts), "--out-dir",
         str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    broken = next(i for i, line in enumerate(lines) if "c.yaml:8:13" in line)
    first_render = next(i for i, line in enumerate(lines) if "a.mp4" in line)
    assert broken < first_render, result.stdout
    assert (tmp_path / "out" / "a.mp4").exists() and (tmp_path / "out" / "b.mp4").exists()


def test_fail_fast_renders_nothing_when_any_script_is_invalid(tmp_path: Path) -> None:
    result = kandanim("render", *batch(tmp_path), "--out-dir", tmp_path / "out", "--fail-fast")
    assert result.returncode == 2 and "zoom-in" in result.stderr
    assert not (tmp_path / "out" / "a.mp4").exists()
    assert result.stdout == ""


def test_two_scripts_of_a_batch_cannot_write_one_output(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    for folder in ("x", "y"):
        (tmp_path / folder / "film.yaml").write_text(SCRIPT)
    result = kandanim("render", tmp_path / "x" / "film.yaml", tmp_path / "y" / "film.yaml",
                      "--out-dir", tmp_path / "out")
    assert result.returncode == 2 and "writes too" in result.stderr
    assert (tmp_path / "out" / "film.mp4").exists()


def test_output_and_out_dir_together_are_a_usage_error(tmp_path: Path) -> None:
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    result = kandanim("render", script, "-o", tmp_path / "a.mp4", "--out-dir", tmp_path / "o")
    assert result.returncode == 2 and "--out-dir" in result.stderr
    assert not (tmp_path / "a.mp4").exists() and not (tmp_path / "o").exists()
