"""Encoder throughput at 640×640 (SPEC §8, §9): frames per second per output format.

The frames (a procedural landscape under a slow dolly-in, like a preview render) are made
before timing; each measurement writes the same 96 frames to a temporary folder through
`kandanim.encode.open_writer`, including finalising (`+faststart`, rename, sidecar).
Median of a few repeats: timings on these shared machines vary up to 3× run to run.

The preview engine must reach 24 frames/s end to end *including* the encoder, so the
encoder alone has to be well above that; ≥ 24 is the necessary bar shown here.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import Row

SIZE = 640
FPS = 24
FRAMES = 96  # 4 s, the default scene: short clips overweight encoder start-up
REPEATS = 3
REAL_TIME = 24.0


def dolly_frames(count: int = FRAMES, size: int = SIZE) -> list[np.ndarray]:
    """A slow zoom into a procedural landscape: realistic motion and detail for a codec."""
    from kandanim.procedural import procedural_scene

    scene, _ = procedural_scene(size * 2, size * 2)
    centre = size  # of the double-size scene
    frames = []
    for i in range(count):
        scale = 0.5 * (1 + 0.004 * i)  # output pixels per scene pixel
        shift = size / 2 - scale * centre
        warp = np.array([[scale, 0, shift], [0, scale, shift]], dtype=np.float32)
        frames.append(cv2.warpAffine(scene, warp, (size, size), flags=cv2.INTER_LINEAR))
    return frames


def write_tone(path: Path, seconds: float, rate: int = 44_100) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * 330 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def encode_once(target: str, frames: list[np.ndarray], audio: Path | None) -> float:
    """Seconds to write `frames` to `target`, finalising included."""
    from kandanim.encode import AudioTrack, open_writer

    track = AudioTrack(audio, 1.0, 1.0) if audio is not None else None
    started = time.perf_counter()
    with open_writer(target, width=SIZE, height=SIZE, fps=FPS, audio=track,
                     metadata={"title": "bench", "kandanim_plan": "{}"},
                     sidecar={"bench": True}) as writer:
        for frame in frames:
            writer.write(frame)
    return time.perf_counter() - started


def median_fps(write: Callable[[], float], frames: int) -> float:
    write()  # warm-up: codec libraries, swscale contexts
    return frames / statistics.median(write() for _ in range(REPEATS))


def run() -> list[Row]:
    frames = dolly_frames()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kandanim-bench-encode-") as tmp:
        folder = Path(tmp)
        tone = write_tone(folder / "tone.wav", FRAMES / FPS + 1)
        cases = [
            ("mp4 (H.264 CRF 18 veryfast)", "out.mp4", None),
            ("mp4 + AAC audio", "out_audio.mp4", tone),
            ("webm (VP9 realtime)", "out.webm", None),
            ("webm + Opus audio", "out_audio.webm", tone),
            ("gif (Pillow, per-frame palette)", "out.gif", None),
            ("png frame folder", f"{folder}/frames/", None),
        ]
        for label, name, audio in cases:
            target = name if name.endswith("/") else str(folder / name)
            fps = median_fps(lambda t=target, a=audio: encode_once(t, frames, a), FRAMES)
            size = _output_bytes(Path(target))
            rows.append(Row(
                f"encode 640²: {label}", round(fps, 1), "frames/s", f"≥ {REAL_TIME:g}",
                fps >= REAL_TIME, f"{size / FRAMES / 1024:.0f} KiB/frame",
            ))
    return rows


def _output_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for row in run():
        print(f"{row.name:48s} {row.value:8.1f} {row.unit:9s} {row.bar:6s} {row.note}")
