"""Missing weights fail in seconds, and `doctor` tells the truth about the hub: with the
network unreachable, with HF_HUB_OFFLINE set and unset (SPEC §5, §10)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """\
version: 1
fps: 4
resolution: 64x64
seed: 3
defaults: {steps: 2, guidance: 2.0, depth: midas, strength: 0.3}
scenes:
  - prompt: "a valley"
    effect: zoom-in
    duration: 0.5
"""
REFUSED = "http://127.0.0.1:9"  # the discard port: nothing listens, connect fails at once
DEFAULT_IDS = {
    "prior": "kandinsky-community/kandinsky-2-2-prior",
    "decoder": "kandinsky-community/kandinsky-2-2-decoder",
    "depth": "Intel/dpt-hybrid-midas",
}


def environment(tmp_path: Path, *, offline: bool, endpoint: str = REFUSED) -> dict[str, str]:
    """A machine whose hub cannot be reached, with an empty (or test-made) cache."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.startswith("KANDANIM_")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint, OMP_NUM_THREADS="1")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def kandanim(*args: str | Path, env: dict[str, str], timeout: float = 60
             ) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(  # noqa: PLW1510 - the exit code is asserted
        [sys.executable, "-m", "kandanim", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("offline", [False, True], ids=["flag-unset", "HF_HUB_OFFLINE"])
def test_missing_weights_fail_in_seconds_with_one_short_message(
    tmp_path: Path, offline: bool
) -> None:
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    result, _ = kandanim("render", script, "-o", tmp_path / "film.mp4", "-q",
                               env=environment(tmp_path, offline=offline))
    assert result.returncode == 1, result.stderr  # the time it takes: benchmarks/bench_hub.py
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 6, result.stderr
    for model_id in DEFAULT_IDS.values():
        assert model_id in result.stderr
    assert "kandanim models pull" in result.stderr and "--engine preview" in result.stderr
    assert ("offline" if offline else "unreachable") in result.stderr
    assert "Traceback" not in result.stderr and "Retry" not in result.stderr
    assert not (tmp_path / "film.mp4").exists()


def cache_as_hub_ids(tiny_models, hf_home: Path) -> None:
    """Put the tiny models into a Hugging Face cache under the default hub ids."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    for role, folder in (("prior", tiny_models.prior), ("decoder", tiny_models.decoder),
                         ("depth", tiny_models.midas)):
        repo = hf_home / "hub" / ("models--" + DEFAULT_IDS[role].replace("/", "--"))
        shutil.copytree(folder, repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)


def test_cached_weights_load_without_touching_an_unreachable_hub(
    tmp_path: Path, tiny_models
) -> None:
    env = environment(tmp_path, offline=False)
    env["KANDANIM_INPAINT"] = "none"
    cache_as_hub_ids(tiny_models, tmp_path / "hf")
    script = tmp_path / "film.yaml"
    script.write_text(SCRIPT)
    result, _ = kandanim("render", script, "-o", tmp_path / "film.mp4", "-q", "--device", "cpu",
                         env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Retry" not in result.stderr and "retry" not in result.stderr.lower()
    assert (tmp_path / "film.mp4").exists()


@pytest.mark.parametrize(
    ("offline", "endpoint", "expected"),
    [(True, REFUSED, "offline"), (False, REFUSED, "unreachable"),
     (False, "http://no-such-host.invalid", "unreachable")],
)
def test_doctor_says_how_the_hub_is_reached(
    tmp_path: Path, offline: bool, endpoint: str, expected: str
) -> None:
    result, _ = kandanim("doctor", env=environment(tmp_path, offline=offline,
                                                         endpoint=endpoint))
    hub = [line for line in result.stdout.splitlines() if line.startswith("hugging face hub")]
    assert len(hub) == 1, result.stdout
    assert expected in hub[0] and "online" not in hub[0]
    # not a terminal: whole lines, no table cut at 80 columns
    weights = [line for line in result.stdout.splitlines() if "depth-anything" in line]
    assert any("depth-anything/Depth-Anything-V2-Small-hf" in line for line in weights)
    assert "┃" not in result.stdout and "│" not in result.stdout


def test_the_hub_probe_is_bounded_and_wants_the_hub_itself(monkeypatch) -> None:
    """A server that answers but is not the hub (a captive portal) is no hub."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from kandanim import hub

    class Portal(BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:  # http.server's naming
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        status = hub.hub_status(timeout=1.0)
        assert status.mode == "unreachable" and "not the hub" in status.detail
    finally:
        server.shutdown()
