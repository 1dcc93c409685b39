"""Farm rendering (SPEC §13) on a local Ray runtime with 2 CPUs, started once for this module.

The runtime costs ~10 s and ~600 MB, so every Ray test lives here, in one xdist group
(`make test` runs `--dist loadgroup`), and uses the same runtime; the farm reuses a
runtime its process already started.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kandanim.cli import app
from kandanim.errors import UserError
from kandanim.farm import FarmOptions, ScriptProgress, render_on_cluster
from kandanim.farm.cluster import parse_address
from kandanim.jobs import JobResult, NoProgress, RenderOptions, render_scripts

pytestmark = pytest.mark.xdist_group("ray")

SCREENPLAY = """\
version: 1
resolution: 64x64
fps: 12
seed: {seed}
engine: preview
scenes:
  - prompt: "{name} one"
    effect: zoom-out
    duration: {duration}
  - prompt: "{name} two"
    effect: orbit-right
    duration: 1
"""


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # no token file for a throwaway runtime
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR,
             log_to_driver=False)
    yield ray
    ray.shutdown()


def _scripts(folder: Path, names: str = "abc", duration: float = 1.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, name in enumerate(names):
        path = folder / f"{name}.yaml"
        path.write_text(SCREENPLAY.format(seed=seed, name=name, duration=duration))
        paths.append(path)
    return paths


def _local(scripts: list[Path], out_dir: Path) -> list[JobResult]:
    return render_scripts(
        scripts, options=RenderOptions(), output=None, out_dir=out_dir, progress=NoProgress(),
        notify=lambda _: None, on_result=lambda _: None,
    )


class _Recorder:
    """Progress and results in the order they arrive."""

    def __init__(self, on_running=None) -> None:
        self.events: list[tuple[str, str]] = []
        self.notices: list[str] = []
        self.on_running = on_running

    def update(self, line: ScriptProgress) -> None:
        self.events.append(("progress", line.script))
        if self.on_running is not None and line.state == "running":
            self.on_running(line)

    def stop(self) -> None:
        pass

    def result(self, result: JobResult) -> None:
        self.events.append(("result", result.script))


def _farm(scripts, out_dir, recorder, workers=2) -> list[JobResult]:
    return render_on_cluster(
        scripts, options=RenderOptions(), farm=FarmOptions("local", workers), output=None,
        out_dir=out_dir, progress=recorder, notify=recorder.notices.append,
        on_result=recorder.result,
    )


def test_batch_on_the_farm_equals_local_renders_bytes_and_stdout(ray_runtime, tmp_path, monkeypatch):
    scripts = _scripts(tmp_path)
    monkeypatch.chdir(tmp_path)
    names = [p.name for p in scripts]
    runner = CliRunner()
    local = runner.invoke(app, ["render", *names, "--out-dir", "local", "-q"])
    farm = runner.invoke(app, ["render", *names, "--out-dir", "farm", "--cluster", "local",
                               "--workers", "2"])
    assert local.exit_code == 0, local.output
    assert farm.exit_code == 0, farm.stderr
    assert farm.stdout.replace("farm", "local") == local.stdout
    assert local.stdout.splitlines() == [str(Path("local") / f"{n}.mp4") for n in "abc"]
    for name in "abc":
        for suffix in (".mp4", ".json"):
            mine = (tmp_path / "farm" / f"{name}{suffix}").read_bytes()
            assert mine == (tmp_path / "local" / f"{name}{suffix}").read_bytes(), name + suffix
    assert "batch summary" in farm.stderr and "worker" in farm.stderr and "total" in farm.stderr
    assert not list((tmp_path / "farm").glob(".*part*")), "temporaries left behind"


def test_a_broken_screenplay_is_reported_before_any_work_and_the_others_render(
    ray_runtime, tmp_path
):
    scripts = _scripts(tmp_path, "ac")
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nscenes:\n  - prompt: x\n    effect: zoom-ot\n")
    recorder = _Recorder()
    results = _farm([scripts[0], broken, scripts[1]], tmp_path / "out", recorder)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert isinstance(results[1].error, UserError) and "zoom-out" in results[1].error.message
    assert recorder.events[0] == ("result", str(broken))
    results_order = [script for kind, script in recorder.events if kind == "result"]
    assert results_order == [str(broken), str(scripts[0]), str(scripts[1])]
    assert (tmp_path / "out" / "a.mp4").is_file() and (tmp_path / "out" / "c.mp4").is_file()


def test_a_worker_killed_mid_render_is_replaced_and_the_batch_completes(ray_runtime, tmp_path):
    scripts = _scripts(tmp_path / "s", "kab", duration=2.0)
    # the one to kill renders longest (and so goes first): a few seconds even on a fast CPU
    scripts[0].write_text(SCREENPLAY.format(seed=9, name="k", duration=10.0))
    killed: list[int] = []

    def kill_once(line: ScriptProgress) -> None:
        running = 1 <= line.done < line.total
        if not killed and line.script == str(scripts[0]) and running and line.pid:
            os.kill(line.pid, signal.SIGKILL)
            killed.append(line.pid)

    recorder = _Recorder(on_running=kill_once)
    results = _farm(scripts, tmp_path / "farm", recorder)
    assert killed, "the test never saw the first screenplay running"
    assert [r.status for r in results] == ["ok", "ok", "ok"], [r.error for r in results]
    assert any("died while rendering" in n and "attempt 2" in n for n in recorder.notices)
    _local(scripts, tmp_path / "local")
    for name in "kab":
        farm = (tmp_path / "farm" / f"{name}.mp4").read_bytes()
        assert farm == (tmp_path / "local" / f"{name}.mp4").read_bytes(), name


def test_ctrl_c_cancels_the_batch_and_says_what_finished(ray_runtime, tmp_path):
    scripts = _scripts(tmp_path, "ab", duration=4.0)

    def interrupt(line: ScriptProgress) -> None:
        if line.done >= 1:
            raise KeyboardInterrupt

    recorder = _Recorder(on_running=interrupt)
    results = _farm(scripts, tmp_path / "out", recorder)
    assert {r.status for r in results} == {"interrupted"}
    assert any(n.startswith("interrupted; 0 of 2") for n in recorder.notices)
    assert not (tmp_path / "out" / "a.mp4").exists()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_is_exit_1_with_the_address_and_a_hint_fast(tmp_path):
    pytest.importorskip("ray")
    (script,) = _scripts(tmp_path, "a")
    address = f"ray://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    result = CliRunner().invoke(app, ["render", str(script), "--cluster", address])
    assert time.monotonic() - started < 10
    assert result.exit_code == 1, result.output
    assert address in result.stderr and "hint" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "a.mp4").exists()


def test_auto_reads_ray_address(monkeypatch):
    assert parse_address("auto", env={}).kind == "auto"
    named = parse_address("auto", env={"RAY_ADDRESS": "ray://head:10001"})
    assert (named.kind, named.host, named.port) == ("client", "head", 10001)
    assert parse_address("auto", env={"RAY_ADDRESS": "10.0.0.2:6379"}).kind == "gcs"
    assert parse_address("ray://head").port == 10001
    for bad in ("remote", "ray://:80", "ray://head:port"):
        with pytest.raises(UserError):
            parse_address(bad)


def test_ray_not_installed_is_exit_2_with_the_install_command(tmp_path, monkeypatch):
    (script,) = _scripts(tmp_path, "a")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = CliRunner().invoke(app, ["render", str(script), "--cluster", "local"])
    assert result.exit_code == 2, result.output
    assert 'pip install "kandanim[ray]"' in result.stderr
    assert "Traceback" not in result.output


def test_workers_without_cluster_is_a_usage_error(tmp_path):
    (script,) = _scripts(tmp_path, "a")
    result = CliRunner().invoke(app, ["render", str(script), "--workers", "2"])
    assert result.exit_code == 2 and "--cluster" in result.stderr


KANDINSKY = """\
version: 1
fps: 4
resolution: 64x64
seed: {seed}
engine: kandinsky
defaults: {{steps: 4, guidance: 2.0, depth: midas, strength: 0.5}}
scenes:
  - prompt: "{prompt}"
    effect: zoom-out
    duration: 1
"""


def test_kandinsky_screenplays_render_on_cpu_workers_like_local(
    ray_runtime, tmp_path, tiny_model_env
):
    """The diffusion engine through the farm: each worker builds its engine once and loads
    the (tiny) models named in the plan; frames match a local render. Within one level, not
    bit for bit: float32 CPU kernels round by memory alignment, which differs by process."""
    from kandanim.encode import iter_frames

    scripts = []
    for seed, prompt in enumerate(("a valley", "a tower")):
        path = tmp_path / f"k{seed}.yaml"
        path.write_text(KANDINSKY.format(seed=seed, prompt=prompt))
        scripts.append(path)
    recorder = _Recorder()
    results = _farm(scripts, tmp_path / "farm", recorder, workers=1)
    assert [r.status for r in results] == ["ok", "ok"], [r.error for r in results]
    _local(scripts, tmp_path / "local")
    for name in ("k0", "k1"):
        farm = list(iter_frames(tmp_path / "farm" / f"{name}.mp4"))
        local = list(iter_frames(tmp_path / "local" / f"{name}.mp4"))
        assert len(farm) == len(local) == 4
        for a, b in zip(farm, local, strict=True):
            assert np.abs(a.astype(int) - b).mean() < 1.0


def test_a_frame_folder_output_comes_back_like_a_local_one(ray_runtime, tmp_path):
    (script,) = _scripts(tmp_path, "a")
    runner = CliRunner()
    local = runner.invoke(app, ["render", str(script), "-o", f"{tmp_path}/local/", "-q"])
    farm = runner.invoke(app, ["render", str(script), "-o", f"{tmp_path}/farm/", "-q",
                               "--cluster", "local"])
    assert local.exit_code == 0 and farm.exit_code == 0, farm.stderr
    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "farm").iterdir()) and len(names) == 24
    for name in names:
        assert (tmp_path / "farm" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    sidecars = [json.loads((tmp_path / f"{n}.json").read_text()) for n in ("farm", "local")]
    assert sidecars[0]["video"].pop("file") == "farm"  # the sidecar names its folder
    assert sidecars[1]["video"].pop("file") == "local"
    assert sidecars[0] == sidecars[1]
