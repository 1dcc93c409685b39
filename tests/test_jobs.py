"""End to end through the CLI: render, preview, batch, interruption and resume, bad input."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
version: 1
fps: 24
resolution: {resolution}
seed: 11
transition: {{type: dissolve, duration: 0.5}}
scenes:
  - prompt: "a valley"
    effect: zoom-in
    duration: {duration}
  - prompt: "a tower"
    effect: orbit-right
    duration: {duration}
"""


def write_script(folder: Path, name: str = "film.yaml", *, resolution: str = "64x64",
                 duration: float = 0.5) -> Path:
    path = folder / name
    path.write_text(SCRIPT.format(resolution=resolution, duration=duration))
    return path


def kandanim(*args: str | Path, cwd: Path | None = None, check: bool = False,
             ) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "kandanim", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_render_preview_writes_the_video_and_prints_its_path(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    result = kandanim("render", script, "--engine", "preview", "-o", tmp_path / "a.mp4", check=True)
    assert result.stdout.strip() == str(tmp_path / "a.mp4")
    frames = decoded_frames(tmp_path / "a.mp4")
    assert len(frames) == 24 and frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])
    assert (tmp_path / "a.json").exists(), "sidecar with the resolved plan"
    assert not (tmp_path / "a.mp4.kandanim-work").exists(), "work folder removed after success"
    assert "Traceback" not in result.stderr


def test_preview_command_renders_an_effect(tmp_path: Path) -> None:
    out = tmp_path / "p.mp4"
    result = kandanim("preview", "--effect", "zoom-out", "--duration", "0.5",
                      "--resolution", "64x64", "-o", out, check=True)
    assert result.stdout.strip() == str(out)
    assert len(decoded_frames(out)) == 12


def test_preview_with_a_misspelt_effect_is_a_clear_usage_error(tmp_path: Path) -> None:
    result = kandanim("preview", "--effect", "zoom-ot", "-o", tmp_path / "p.mp4")
    assert result.returncode == 2
    assert "zoom-out" in result.stderr and "Traceback" not in result.stderr


def test_batch_continues_past_a_broken_script_and_reports(tmp_path: Path) -> None:
    good_a = write_script(tmp_path, "a.yaml")
    broken = tmp_path / "b.yaml"
    broken.write_text("version: 1\nscenes:\n  - prompt: x\n    effect: zoom-ot\n")
    good_c = write_script(tmp_path, "c.yaml")
    result = kandanim("render", good_a, broken, good_c, "--engine", "preview",
                      "--out-dir", tmp_path / "renders")
    assert result.returncode == 2
    outputs = result.stdout.split()
    assert outputs == [str(tmp_path / "renders" / "a.mp4"), str(tmp_path / "renders" / "c.mp4")]
    assert all(Path(p).exists() for p in outputs)
    assert "b.yaml:4:13" in result.stderr and "zoom-out" in result.stderr
    assert "batch summary" in result.stderr and "failed" in result.stderr


def test_fail_fast_stops_the_batch(tmp_path: Path) -> None:
    broken = tmp_path / "b.yaml"
    broken.write_text("version: 1\nscenes: []\n")
    good = write_script(tmp_path, "c.yaml")
    result = kandanim("render", broken, good, "--engine", "preview", "--fail-fast",
                      "--out-dir", tmp_path / "renders")
    assert result.returncode == 2
    assert not (tmp_path / "renders" / "c.mp4").exists()


def test_refuses_to_overwrite_a_non_video_file(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    precious = tmp_path / "notes.mp4"
    precious.write_text("my notes, not a video")
    result = kandanim("render", script, "--engine", "preview", "-o", tmp_path / "film.yaml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert script.read_text().startswith("version: 1")


def test_unsupported_output_extension(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    result = kandanim("render", script, "--engine", "preview", "-o", tmp_path / "film.avi")
    assert result.returncode == 2 and ".mp4" in result.stderr


def test_unwritable_output_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-folder"
        blocked.write_text("x")
        target = blocked / "out.mp4"  # a folder that cannot exist: even root cannot write
    else:
        blocked = tmp_path / "ro"
        blocked.mkdir(mode=0o500)
        target = blocked / "out.mp4"
    script = write_script(tmp_path)
    result = kandanim("render", script, "--engine", "preview", "-o", target)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert str(blocked) in result.stderr


def _interrupt_and_resume(tmp_path: Path, sig: int) -> None:
    script = write_script(tmp_path, resolution="256x256", duration=2.0)
    reference = tmp_path / "reference.mp4"
    kandanim("render", script, "--engine", "preview", "-o", reference, "-q", check=True)

    out = tmp_path / "resumed.mp4"
    frames_dir = tmp_path / "resumed.mp4.kandanim-work" / "frames"
    stop_after = random.Random(sig).randint(5, 60)
    process = subprocess.Popen(
        [sys.executable, "-m", "kandanim", "render", str(script), "--engine", "preview",
         "-o", str(out), "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if frames_dir.exists() and len(list(frames_dir.glob("*.png"))) >= stop_after:
            process.send_signal(sig)
            break
        time.sleep(0.002)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), stderr
    assert not out.exists(), "no finished-looking file after an interruption"
    if sig == signal.SIGINT:
        assert "run the same command again" in stderr and "Traceback" not in stderr
        assert "error" not in stderr.lower(), "Ctrl-C is an interruption, not an error"

    result = kandanim("render", script, "--engine", "preview", "-o", out, "-q", check=True)
    assert "resuming from frame" in result.stderr
    resumed, expected = decoded_frames(out), decoded_frames(reference)
    assert len(resumed) == len(expected) == 96
    assert all(np.array_equal(a, b) for a, b in zip(resumed, expected, strict=True))


def test_sigkill_at_a_random_frame_then_resume_gives_the_same_video(tmp_path: Path) -> None:
    _interrupt_and_resume(tmp_path, signal.SIGKILL)


def test_ctrl_c_saves_progress_exits_130_and_resumes(tmp_path: Path) -> None:
    _interrupt_and_resume(tmp_path, signal.SIGINT)


def test_changed_screenplay_starts_afresh_with_a_notice(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    out = tmp_path / "x.mp4"
    kandanim("render", script, "--engine", "preview", "-o", out, "--keep-frames", "-q", check=True)
    assert (tmp_path / "x.mp4.kandanim-work" / "manifest.json").exists()
    script.write_text(script.read_text().replace("seed: 11", "seed: 12"))
    result = kandanim("render", script, "--engine", "preview", "-o", out, "-q", check=True)
    assert "starting afresh" in result.stderr
    assert len(decoded_frames(out)) == 24


def test_no_resume_ignores_saved_frames(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    out = tmp_path / "x.mp4"
    kandanim("render", script, "--engine", "preview", "-o", out, "--keep-frames", "-q", check=True)
    result = kandanim("render", script, "--engine", "preview", "-o", out, "--no-resume", "-q",
                      check=True)
    assert "resuming" not in result.stderr


@pytest.mark.parametrize("suffix", [".webm", ".gif"])
def test_other_formats_through_the_cli(tmp_path: Path, suffix: str) -> None:
    script = write_script(tmp_path)
    out = tmp_path / f"x{suffix}"
    kandanim("render", script, "--engine", "preview", "-o", out, "-q", check=True)
    assert len(decoded_frames(out)) == 24


def test_png_folder_output(tmp_path: Path) -> None:
    script = write_script(tmp_path)
    out = tmp_path / "frames"
    kandanim("render", script, "--engine", "preview", "-o", f"{out}/", "-q", check=True)
    assert sorted(p.name for p in out.glob("*.png"))[:2] == ["000000.png", "000001.png"]
    assert len(list(out.glob("*.png"))) == 24


def test_disk_full_while_saving_frames_fails_cleanly(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC from the frame saver: exit 1 with a clear message, no partial video left."""
    import errno

    from kandanim import resume

    script = write_script(tmp_path)
    calls = {"n": 0}
    real = resume._atomic_write

    def failing_write(path: Path, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(resume, "_atomic_write", failing_write)
    from typer.testing import CliRunner

    from kandanim.cli import app

    out = tmp_path / "full.mp4"
    result = CliRunner().invoke(app, ["render", str(script), "--engine", "preview", "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".full.mp4*")), "no temporary video left behind"


@pytest.mark.parametrize("kind", ["init_image", "audio"])
def test_corrupt_input_files_are_clear_errors(tmp_path: Path, kind: str) -> None:
    broken = tmp_path / ("photo.png" if kind == "init_image" else "music.mp3")
    broken.write_bytes(b"\x89PNG not really" if kind == "init_image" else b"ID3 garbage")
    script = tmp_path / "s.yaml"
    extra = (f"    init_image: {broken.name}\n" if kind == "init_image" else "")
    top = (f"audio: {{path: {broken.name}}}\n" if kind == "audio" else "")
    script.write_text(
        f"version: 1\nfps: 12\nresolution: 64x64\nseed: 1\n{top}"
        f"scenes:\n  - prompt: x\n    effect: zoom-in\n    duration: 0.5\n{extra}"
    )
    result = kandanim("render", script, "--engine", "preview", "-o", tmp_path / "o.mp4")
    assert result.returncode == 2, result.stderr
    assert broken.name in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.mp4").exists()
