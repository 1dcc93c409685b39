"""`kandanim render --engine kandinsky` end to end on tiny models (CPU, 64×64, offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np

SCRIPT = """\
version: 1
fps: 8
resolution: 64x64
seed: 3
defaults: {steps: 4, guidance: 2.0, depth: midas, strength: 0.3}
transition: {type: dissolve, duration: 0.5}
scenes:
  - prompt: "a valley"
    effect: zoom-in
    duration: 1
  - prompt: "a tower"
    effect: orbit-right
    duration: 1
"""


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "kandanim", *args], capture_output=True, text=True, env=env,
        timeout=600,
    )


def test_render_two_scenes_with_the_kandinsky_engine(tmp_path: Path, tiny_model_env) -> None:
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    out = tmp_path / "film.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = run(["render", str(script), "--engine", "kandinsky", "--device", "cpu",
                  "-o", str(out), "-q"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 8
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 16
    assert frames[0].shape == (64, 64, 3)
    assert not np.array_equal(frames[0], frames[-1])


def test_missing_weights_is_one_clear_message(tmp_path: Path, no_model_env) -> None:
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    env = {**os.environ, "KANDANIM_DECODER": str(tmp_path / "no-such-folder")}
    result = run(["render", str(script), "-o", str(tmp_path / "x.mp4"), "-q"], env)
    assert result.returncode == 1
    assert "kandanim models pull" in result.stderr and "--engine preview" in result.stderr
    assert "no-such-folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.mp4").exists()
    assert not (tmp_path / "x.mp4.kandanim-work").exists(), "nothing written before models load"
