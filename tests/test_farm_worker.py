"""The farm's worker and output publishing, without Ray: a worker that cannot see the
asking machine's files renders from the bytes shipped with the job, and what comes back is
written exactly as a local render writes it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kandanim.encode import publish_files
from kandanim.farm.batch import _bake
from kandanim.farm.worker import RenderWorker, localise_inputs
from kandanim.jobs import NoProgress, RenderOptions, render_scripts

sys.path.insert(0, str(Path(__file__).parent))
from test_encode import write_tone

SCREENPLAY = """\
version: 1
resolution: 64x64
fps: 8
seed: 5
engine: preview
audio: {path: inputs/tone.wav}
scenes:
  - prompt: "from a photo"
    init_image: inputs/photo.png
    effect: right
    duration: 1
"""


@pytest.fixture
def screenplay(tmp_path: Path) -> Path:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    photo = cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(inputs / "photo.png"), photo)
    write_tone(inputs / "tone.wav", seconds=2.0)
    path = tmp_path / "shot.yaml"
    path.write_text(SCREENPLAY)
    return path


def _local(script: Path, out_dir: Path) -> None:
    (result,) = render_scripts(
        [script], options=RenderOptions(), output=None, out_dir=out_dir, progress=NoProgress(),
        notify=lambda _: None, on_result=lambda _: None,
    )
    assert result.status == "ok", result.error


def test_a_worker_without_the_input_files_renders_the_local_video(screenplay, tmp_path):
    _local(screenplay, tmp_path / "local")
    job, target = _bake(0, screenplay, RenderOptions(), None, tmp_path / "farm", print)
    assert sorted(Path(p).name for p in job.inputs) == ["photo.png", "tone.wav"]
    shutil.move(tmp_path / "inputs", tmp_path / "elsewhere")  # the worker cannot see them

    notices: list = []
    worker = RenderWorker(1, RenderOptions(), ["preview"])
    rendered = worker.render(job, events=type("Sink", (), {"put_nowait": notices.append})())
    assert rendered.error is None, rendered.error
    publish_files(target, rendered.content, rendered.sidecar)

    for suffix in (".mp4", ".json"):
        ours = (tmp_path / "farm" / f"shot{suffix}").read_bytes()
        assert ours == (tmp_path / "local" / f"shot{suffix}").read_bytes(), suffix
    assert any(event[0] == "progress" for event in notices)


def test_localise_inputs_keeps_paths_this_machine_has(screenplay, tmp_path):
    job, _ = _bake(0, screenplay, RenderOptions(), None, tmp_path / "out", print)
    plan, moved = localise_inputs(job.plan, job.inputs, tmp_path / "copies")
    assert plan is job.plan and moved == {}
    (tmp_path / "inputs" / "photo.png").write_bytes(b"changed")  # same path, other bytes
    plan, moved = localise_inputs(job.plan, job.inputs, tmp_path / "copies")
    copy = plan.scenes[0].init_image
    assert copy != job.plan.scenes[0].init_image and copy.read_bytes() != b"changed"
    assert moved == {str(copy): str(job.plan.scenes[0].init_image)}
    assert plan.audio == job.plan.audio  # the soundtrack there is still the same


def test_publish_files_writes_frame_folders_and_refuses_bad_names(tmp_path):
    target = tmp_path / "frames"
    frames = {"000000.png": b"a", "000001.png": b"b"}
    publish_files(str(target) + "/", frames, b"{}\n")
    assert sorted(p.name for p in target.iterdir()) == ["000000.png", "000001.png"]
    assert (tmp_path / "frames.json").read_text() == "{}\n"
    with pytest.raises(ValueError):
        publish_files(str(target) + "/", {"../evil.png": b"x"})
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
