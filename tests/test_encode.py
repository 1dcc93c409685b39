"""The writer (kandanim.encode) and the contact sheet: every format decoded back with PyAV."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import wave
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from kandanim import encode
from kandanim.encode import (
    AudioTrack,
    check_output,
    fade_gain,
    gif_delay_centiseconds,
    iter_frames,
    open_writer,
    output_format,
    probe_audio,
    read_metadata,
    sidecar_path,
)
from kandanim.errors import RuntimeFailure, UserError
from kandanim.tools.contact_sheet import main as contact_sheet_main
from kandanim.tools.contact_sheet import pick_indices

WIDTH, HEIGHT, FPS, FRAMES = 128, 64, 24, 36
CODECS = {"mp4": "h264", "webm": "vp9", "gif": "gif"}
# Saturated test content: 4:2:0 chroma subsampling alone caps RGB PSNR near 30 dB here.
MIN_PSNR = {"mp4": 28.0, "webm": 28.0, "gif": 26.0}


def make_frames(count: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> list[np.ndarray]:
    """Smooth, moving, colourful content: gradients sliding sideways plus a moving disc."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        red = 128 + 100 * np.sin((x + 3 * i) / 17.0)
        green = 128 + 100 * np.cos((y - 2 * i) / 11.0)
        blue = 255 * x / width
        disc = (x - (10 + 2 * i)) ** 2 + (y - height / 2) ** 2 < 80
        frame = np.stack([red, green, blue], axis=-1)
        frame[disc] = (250, 250, 40)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_frames()


def write_tone(path: Path, *, seconds: float, rate: int = 44_100, amplitude: float = 0.5) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    samples = (amplitude * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    return write_tone(tmp_path / "tone.wav", seconds=3.0)


def write_video(path: str | Path, frames: list[np.ndarray], **kwargs: Any) -> Path:
    with open_writer(path, width=frames[0].shape[1], height=frames[0].shape[0], fps=FPS,
                     **kwargs) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def decoded_audio(path: Path) -> tuple[av.AudioStream, np.ndarray]:
    """The first audio stream and its samples as float (channels, n)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            data = frame.to_ndarray()
            if not frame.format.is_planar:
                data = data.reshape(-1, frame.layout.nb_channels).T
            chunks.append(data.astype(np.float64))
        return stream, np.concatenate(chunks, axis=1)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".part" in p.name)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mp4", "mp4"), ("A.MP4", "mp4"), ("x/a.webm", "webm"), ("a.gif", "gif"),
     ("frames/", "png")],
)
def test_output_format_by_extension_or_trailing_slash(name: str, expected: str) -> None:
    assert output_format(name) == expected


def test_an_existing_folder_is_a_png_output(tmp_path: Path) -> None:
    assert output_format(tmp_path) == "png"


@pytest.mark.parametrize("name", ["a.avi", "script.txt", "noextension", "a.mp4.yaml"])
def test_unsupported_outputs_are_user_errors_listing_the_formats(name: str,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(UserError) as caught:
        output_format(tmp_path / name)
    assert ".mp4" in caught.value.message and ".webm" in caught.value.message
    assert ".gif" in caught.value.message and "folder" in caught.value.message


def test_sidecar_sits_beside_the_output(tmp_path: Path) -> None:
    assert sidecar_path(tmp_path / "demo.mp4") == tmp_path / "demo.json"
    assert sidecar_path(f"{tmp_path}/frames/") == tmp_path / "frames.json"


@pytest.mark.parametrize("fmt", ["mp4", "webm", "gif"])
def test_video_round_trip(fmt: str, frames: list[np.ndarray], tmp_path: Path) -> None:
    out = write_video(tmp_path / f"clip.{fmt}", frames)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == CODECS[fmt]
        assert (stream.width, stream.height) == (WIDTH, HEIGHT)
        if fmt == "gif":  # FFmpeg reports a GIF's rate rounded to whole centiseconds
            assert 23 <= stream.average_rate <= 25
        else:
            assert stream.average_rate == FPS
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert stream.codec_context.colorspace == 1  # tagged BT.709
        decoded, times = [], []
        for frame in container.decode(stream):
            decoded.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    assert len(decoded) == FRAMES
    assert np.allclose(times, np.arange(FRAMES) / FPS, atol=0.01)  # every frame on time
    assert not container.streams.audio
    for source, back in zip(frames, decoded):
        assert back.shape == (HEIGHT, WIDTH, 3)
        assert psnr(source, back) > MIN_PSNR[fmt]
    assert psnr(frames[0], decoded[8]) < MIN_PSNR[fmt] - 6  # frames are not interchangeable
    # The content moves: consecutive decoded frames differ, and not by a constant.
    assert np.abs(decoded[10].astype(int) - decoded[11]).mean() > 2
    assert decoded[10].std() > 20


def top_level_boxes(path: Path) -> list[bytes]:
    """The names of an MP4 file's top-level boxes, in file order."""
    names, data, offset = [], path.read_bytes(), 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        names.append(data[offset + 4 : offset + 8])
        if size == 1:  # 64-bit size follows the name
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        offset += max(size, 8)
    return names


def test_mp4_is_faststart(frames: list[np.ndarray], tmp_path: Path) -> None:
    boxes = top_level_boxes(write_video(tmp_path / "clip.mp4", frames))
    assert boxes[0] == b"ftyp" and boxes.index(b"moov") < boxes.index(b"mdat")


def textured_pan(count: int = 24, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Blurred noise panned and zoomed with Lanczos, like the preview engine's photo moves."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (2 * size, 2 * size, 3), dtype=np.uint8),
                             (5, 5), 0)
    dx, dy, zoom = rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(0, 0.03)
    return [
        cv2.warpAffine(image, np.float32([[1 + zoom * i, 0, dx * i - size / 4],
                                          [0, 1 + zoom * i, dy * i - size / 4]]),
                       (size, size), flags=cv2.INTER_LANCZOS4)
        for i in range(count)
    ]


def test_mp4_bytes_are_the_same_every_time(tmp_path: Path) -> None:
    # libx264's AVX-512 code let leftover heap memory change B-frames when the width is
    # not a multiple of 128 px (96 here). Freed random blocks before each encode make that
    # leftover memory differ every time: without the fix no two of these files matched.
    frames = textured_pan()
    rng = np.random.default_rng(0)
    digests = set()
    for k in range(4):
        litter = [rng.bytes(int(n)) for n in rng.integers(256, 100_000, 400)]
        del litter
        digests.add(hashlib.md5(write_video(tmp_path / f"{k}.mp4", frames).read_bytes()).digest())
    assert len(digests) == 1


def test_webm_bytes_are_the_same_every_time(tmp_path: Path) -> None:
    # Matroska's random segment and track UIDs made every WebM differ (fflags=+bitexact)
    frames = textured_pan()[:8]
    first, second = (write_video(tmp_path / f"{k}.webm", frames).read_bytes() for k in (0, 1))
    assert first == second
    assert len(list(iter_frames(tmp_path / "0.webm"))) == 8


def test_gif_plays_at_the_frame_rate_in_whole_centiseconds() -> None:
    for fps in (1, 7, 10, 12, 15, 24, 25, 30, 50):
        delays = [gif_delay_centiseconds(i, fps) for i in range(fps * 3)]
        assert sum(delays) == 300  # three seconds exactly
        assert max(delays) - min(delays) <= 1


def test_gif_at_24_fps_lasts_as_long_as_the_video(frames: list[np.ndarray],
                                                  tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.gif", frames[:24])
    with Image.open(out) as gif:
        assert gif.info.get("loop") == 0
        total = 0
        for index in range(gif.n_frames):
            gif.seek(index)
            total += gif.info["duration"]
    assert total == pytest.approx(1000, abs=10)


def test_png_folder_round_trip_is_lossless(frames: list[np.ndarray], tmp_path: Path) -> None:
    out = write_video(f"{tmp_path}/frames/", frames)
    assert out == tmp_path / "frames"
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(FRAMES)]
    with av.open(str(out / "000007.png")) as container:
        assert container.streams.video[0].codec_context.name == "png"
    decoded = list(iter_frames(out))
    assert len(decoded) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(frames, decoded))


def test_rendering_again_into_a_frame_folder_drops_stale_frames(
    frames: list[np.ndarray], tmp_path: Path
) -> None:
    write_video(f"{tmp_path}/frames/", frames, sidecar={})
    check_output(tmp_path / "frames", force=False)  # our own frames: fine to replace
    write_video(tmp_path / "frames", frames[:5])
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == [
        f"{i:06d}.png" for i in range(5)
    ]
    assert leftovers(tmp_path) == []


def test_frames_are_checked(tmp_path: Path) -> None:
    with open_writer(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, fps=FPS) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((HEIGHT, WIDTH, 3), np.float32))
        with pytest.raises(ValueError, match=r"\(64, 128, 3\)"):
            writer.write(np.zeros((WIDTH, HEIGHT, 3), np.uint8))
        writer.write(np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    assert writer.frames_written == 1


def test_odd_sizes_are_refused_for_yuv420p(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="even"):
        open_writer(tmp_path / "a.mp4", width=65, height=64, fps=FPS)
    assert list(tmp_path.iterdir()) == []


def test_closing_without_frames_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    writer = open_writer(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, fps=FPS)
    with pytest.raises(ValueError, match="no frames"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- audio


@pytest.mark.parametrize(("fmt", "codec", "frame_size"), [("mp4", "aac", 1024),
                                                          ("webm", "opus", 960)])
def test_audio_is_trimmed_and_faded_to_the_video(
    fmt: str, codec: str, frame_size: int, frames: list[np.ndarray], tone: Path, tmp_path: Path
) -> None:
    out = write_video(tmp_path / f"clip.{fmt}", frames, audio=AudioTrack(tone, 1.0, 0.25))
    stream, samples = decoded_audio(out)
    assert stream.codec_context.name == codec
    assert stream.rate == 48_000 and samples.shape[0] == 2
    video_seconds = FRAMES / FPS  # 1.5 s of video from 3 s of tone
    assert abs(samples.shape[1] - video_seconds * 48_000) <= frame_size
    whole = samples.shape[1] // 480 * 480
    level = np.abs(samples[:, :whole]).reshape(2, -1, 480).max(axis=2)  # 10 ms peaks
    middle = level[:, level.shape[1] // 2]
    assert middle == pytest.approx([0.5, 0.5], abs=0.05)  # mono tone on both sides
    assert level[:, 1].max() < 0.1  # fade-in
    assert level[:, -2].max() < 0.1  # fade-out at the video's end
    assert (level[:, 40] > level[:, 5]).all()  # rising through the fade-in
    # Still a clean 440 Hz tone between the fades: no gaps or clicks where chunks meet.
    steady = samples[0, 24_000:48_000]
    spectrum = np.abs(np.fft.rfft(steady)) ** 2
    hertz = np.fft.rfftfreq(steady.size, 1 / 48_000)
    assert spectrum[np.abs(hertz - 440) < 10].sum() / spectrum.sum() > 0.99


def test_a_short_soundtrack_is_not_padded(frames: list[np.ndarray], tmp_path: Path) -> None:
    short = write_tone(tmp_path / "short.wav", seconds=0.5)
    out = write_video(tmp_path / "clip.mp4", frames, audio=AudioTrack(short, 1.0, 0.0))
    _, samples = decoded_audio(out)
    assert abs(samples.shape[1] - 0.5 * 48_000) <= 1024


def test_volume_scales_the_soundtrack(frames: list[np.ndarray], tone: Path,
                                      tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.webm", frames, audio=AudioTrack(tone, 0.5, 0.0))
    _, samples = decoded_audio(out)
    assert np.abs(samples[:, 24_000:48_000]).max() == pytest.approx(0.25, abs=0.03)


def test_fade_gain_shape() -> None:
    gain = fade_gain(0, 1000, rate=100, fade=2.0, volume=0.8, end=1000)
    assert gain[0] == 0 and gain[-1] == pytest.approx(0, abs=1e-3)
    assert gain[500] == pytest.approx(0.8)
    assert np.all(np.diff(gain[:200]) >= 0) and np.all(np.diff(gain[800:]) <= 0)
    assert np.all(fade_gain(0, 10, rate=100, fade=0.0, volume=1.5, end=10) == 1.5)


@pytest.mark.parametrize("target", ["clip.gif", "frames/"])
def test_gif_and_png_ignore_audio_with_a_warning(
    target: str, frames: list[np.ndarray], tone: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="kandanim.encode"):
        write_video(f"{tmp_path}/{target}", frames[:3], audio=AudioTrack(tone, 1.0, 0.0))
    assert "no audio" in caplog.text


def test_a_missing_audio_file_is_a_user_error_naming_it(frames: list[np.ndarray],
                                                        tmp_path: Path) -> None:
    missing = tmp_path / "music.mp3"
    with pytest.raises(UserError, match="music.mp3"):
        open_writer(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, fps=FPS,
                    audio=AudioTrack(missing, 1.0, 1.0))
    assert list(tmp_path.iterdir()) == []


def test_an_undecodable_audio_file_is_a_user_error(tmp_path: Path) -> None:
    junk = tmp_path / "music.mp3"
    junk.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(UserError, match="music.mp3"):
        probe_audio(junk)
    with pytest.raises(UserError, match="music.mp3"):
        open_writer(tmp_path / "a.webm", width=WIDTH, height=HEIGHT, fps=FPS,
                    audio=AudioTrack(junk, 1.0, 1.0))
    assert leftovers(tmp_path) == []


def test_a_video_without_sound_is_not_a_soundtrack(frames: list[np.ndarray],
                                                   tmp_path: Path) -> None:
    silent = write_video(tmp_path / "silent.mp4", frames[:3])
    with pytest.raises(UserError, match="no audio"):
        probe_audio(silent)


def test_probe_audio_reports_the_track(tone: Path) -> None:
    info = probe_audio(tone)
    assert (info.sample_rate, info.channels) == (44_100, 1)
    assert info.duration == pytest.approx(3.0, abs=0.01)


# ----------------------------------------------------------------------------- metadata


YAML = "version: 1\ntitle: Воздушный шар ✓\nscenes:\n  - prompt: \"a: b\"\n    effect: down\n"
METADATA = {"title": "Balloon", "comment": YAML, "kandanim_plan": json.dumps({"frames": 36})}


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_metadata_round_trip(fmt: str, frames: list[np.ndarray], tmp_path: Path) -> None:
    out = write_video(tmp_path / f"clip.{fmt}", frames[:3], metadata=METADATA)
    found = read_metadata(out)
    for key, value in METADATA.items():
        assert found[key] == value


def test_mp4_keeps_standard_tags_without_custom_keys(frames: list[np.ndarray],
                                                     tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.mp4", frames[:3], metadata={"title": "T", "comment": "c"})
    found = read_metadata(out)
    assert (found["title"], found["comment"]) == ("T", "c")


def test_gif_carries_the_comment(frames: list[np.ndarray], tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.gif", frames[:3], metadata=METADATA)
    assert read_metadata(out)["comment"] == YAML


def test_sidecar_records_the_callers_data_and_the_video(frames: list[np.ndarray],
                                                        tone: Path, tmp_path: Path) -> None:
    out = write_video(tmp_path / "demo.mp4", frames, audio=AudioTrack(tone, 0.7, 0.5),
                      sidecar={"seed": 42, "engine": "preview", "script": tmp_path / "s.yaml"})
    data = json.loads((tmp_path / "demo.json").read_text())
    assert (data["seed"], data["engine"], data["script"]) == (42, "preview",
                                                             str(tmp_path / "s.yaml"))
    video = data["video"]
    assert video["file"] == out.name and video["format"] == "mp4" and video["codec"] == "h264"
    assert (video["width"], video["height"], video["fps"], video["frames"]) == (
        WIDTH, HEIGHT, FPS, FRAMES)
    assert video["audio"]["volume"] == 0.7 and video["audio"]["codec"] == "aac"


def test_sidecar_must_be_json_and_must_not_use_the_reserved_key(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        open_writer(tmp_path / "a.mp4", width=64, height=64, fps=FPS, sidecar={"x": object()})
    with pytest.raises(ValueError, match="reserved"):
        open_writer(tmp_path / "a.mp4", width=64, height=64, fps=FPS, sidecar={"video": 1})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("target", ["clip.mp4", "clip.webm", "clip.gif", "frames/"])
def test_nothing_appears_at_the_final_path_before_close(
    target: str, frames: list[np.ndarray], tmp_path: Path
) -> None:
    final = tmp_path / target.rstrip("/")
    writer = open_writer(f"{tmp_path}/{target}", width=WIDTH, height=HEIGHT, fps=FPS,
                         sidecar={"seed": 1})
    for frame in frames[:6]:
        writer.write(frame)
    assert not final.exists() and not sidecar_path(f"{tmp_path}/{target}").exists()
    assert len(leftovers(tmp_path)) == 1 and leftovers(tmp_path)[0].startswith(f".{final.name}")
    assert writer.close() == final
    assert final.exists() and sidecar_path(f"{tmp_path}/{target}").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("target", ["clip.mp4", "clip.gif", "frames/"])
def test_abort_leaves_nothing(target: str, frames: list[np.ndarray], tmp_path: Path) -> None:
    writer = open_writer(f"{tmp_path}/{target}", width=WIDTH, height=HEIGHT, fps=FPS,
                         sidecar={})
    writer.write(frames[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []
    writer.abort()  # idempotent
    with pytest.raises(RuntimeError, match="aborted"):
        writer.write(frames[0])


def test_an_exception_in_the_block_keeps_the_previous_video(
    frames: list[np.ndarray], tone: Path, tmp_path: Path
) -> None:
    previous = write_video(tmp_path / "clip.mp4", frames[:3], sidecar={"run": 1})
    before = previous.read_bytes()
    with pytest.raises(KeyError), open_writer(
        previous, width=WIDTH, height=HEIGHT, fps=FPS, sidecar={"run": 2},
        audio=AudioTrack(tone, 1.0, 1.0),
    ) as writer:
        for frame in frames:
            writer.write(frame)
        raise KeyError("the renderer failed")
    assert previous.read_bytes() == before
    assert json.loads((tmp_path / "clip.json").read_text())["run"] == 1
    assert leftovers(tmp_path) == []


def test_an_existing_output_is_replaced_at_close(frames: list[np.ndarray],
                                                 tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.webm", frames[:3], sidecar={})
    check_output(out, force=False)
    write_video(out, frames)
    assert len(list(iter_frames(out))) == FRAMES


# ----------------------------------------------------------------------------- disk full


class FullDiskContainer:
    """Wraps a PyAV output container; mux fails with ENOSPC after `budget` calls."""

    def __init__(self, real: Any, budget: int) -> None:
        self._real, self._budget = real, budget

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def mux(self, packets: Any) -> None:
        self._budget -= 1
        if self._budget < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real.mux(packets)


class SmallDisk:
    """A pretend disk: files opened for writing on it share `free` bytes, then ENOSPC."""

    def __init__(self, free: int) -> None:
        self.free = free

    def open(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        real = open(path, mode, *args, **kwargs)  # noqa: SIM115 - handed to the caller
        return FileOnSmallDisk(real, self) if "w" in mode else real


class FileOnSmallDisk:
    def __init__(self, real: Any, disk: SmallDisk) -> None:
        self._real, self._disk = real, disk

    def write(self, data: Any) -> int:
        self._disk.free -= len(data)
        if self._disk.free < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._real.write(data)

    def close(self) -> None:
        self._real.close()

    def __enter__(self) -> FileOnSmallDisk:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_disk_full_in_the_muxer(fmt: str, frames: list[np.ndarray], tone: Path,
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = av.open

    def open_on_a_small_disk(*args: Any, **kwargs: Any) -> Any:
        container = real_open(*args, **kwargs)
        return FullDiskContainer(container, 5) if "w" in args[1:2] else container

    monkeypatch.setattr(av, "open", open_on_a_small_disk)
    with pytest.raises(RuntimeFailure, match="disk is full") as caught:
        write_video(tmp_path / f"clip.{fmt}", frames, audio=AudioTrack(tone, 1.0, 0.1),
                    sidecar={})
    assert "free some space" in (caught.value.hint or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tone.wav"]


@pytest.mark.parametrize("target", ["clip.gif", "frames/"])
def test_disk_full_in_file_writes(target: str, frames: list[np.ndarray], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encode, "open", SmallDisk(60_000).open, raising=False)
    with pytest.raises(RuntimeFailure, match="disk is full"):
        write_video(f"{tmp_path}/{target}", frames * 4, sidecar={})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- check_output


def test_check_output_creates_the_parent_folder(tmp_path: Path) -> None:
    check_output(tmp_path / "new" / "deeper" / "a.mp4", force=False)
    assert (tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []


def test_check_output_reports_an_unwritable_folder(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refuse)  # chmod does not stop root, who runs CI here
    with pytest.raises(UserError, match="Permission denied") as caught:
        check_output(tmp_path / "locked" / "a.mp4", force=False)
    assert "-o" in (caught.value.hint or "")


def test_check_output_refuses_a_file_in_place_of_the_folder(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(UserError, match="blocker"):
        check_output(tmp_path / "blocker" / "a.mp4", force=True)


def test_check_output_refuses_to_clobber_what_is_not_a_video(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("my notes, unfortunately named")
    with pytest.raises(UserError, match="did not write it") as caught:
        check_output(notes, force=False)
    assert "--force" in (caught.value.hint or "")
    check_output(notes, force=True)


def test_check_output_accepts_an_existing_video_of_ours(frames: list[np.ndarray],
                                                        tmp_path: Path) -> None:
    for fmt in ("mp4", "webm", "gif"):
        out = write_video(tmp_path / f"clip.{fmt}", frames[:2], sidecar={})
        check_output(out, force=False)


def test_check_output_protects_a_foreign_file_in_the_sidecar_slot(tmp_path: Path) -> None:
    (tmp_path / "demo.json").write_text('{"version": 1, "scenes": []}')  # a JSON screenplay
    with pytest.raises(UserError, match="demo.json"):
        check_output(tmp_path / "demo.mp4", force=False)
    check_output(tmp_path / "demo.mp4", force=False, sidecar=False)
    check_output(tmp_path / "demo.mp4", force=True)


def test_check_output_refuses_a_folder_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"jpeg")
    with pytest.raises(UserError, match="holiday.jpg"):
        check_output(tmp_path / "photos", force=False)
    check_output(tmp_path / "photos", force=True)


def test_check_output_rejects_a_trailing_slash_on_a_file(tmp_path: Path) -> None:
    (tmp_path / "clip").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        check_output(f"{tmp_path}/clip/", force=False)


# ----------------------------------------------------------------------------- contact sheet


def test_pick_indices_spreads_evenly_with_both_ends() -> None:
    assert pick_indices(36, 4) == [0, 12, 23, 35]
    assert pick_indices(3, 8) == [0, 1, 2]
    assert pick_indices(10, 1) == [0]
    assert pick_indices(0, 8) == []


@pytest.mark.parametrize("target", ["clip.mp4", "clip.gif", "frames/"])
def test_contact_sheet_grid(target: str, frames: list[np.ndarray], tmp_path: Path) -> None:
    video = write_video(f"{tmp_path}/{target}", frames)
    sheet = tmp_path / "sheet.png"
    assert contact_sheet_main([str(video), str(sheet), "--count", "6", "--width", "64"]) == 0
    with Image.open(sheet) as image:
        picture = np.asarray(image.convert("RGB"))
    # 4 columns × 2 rows of 64×32 thumbnails with labels and gaps.
    assert 4 * 64 < picture.shape[1] < 4 * 80 and 2 * 32 < picture.shape[0] < 2 * 64
    first_cell = picture[6 : 6 + 32, 6 : 6 + 64]
    expected = np.asarray(Image.fromarray(frames[0]).resize((64, 32), Image.Resampling.BOX))
    assert psnr(first_cell, expected) > 25


def test_contact_sheet_reports_a_missing_video(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert contact_sheet_main([str(tmp_path / "nope.mp4"), str(tmp_path / "s.png")]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_disk_full_while_finishing_keeps_the_previous_gif(
    frames: list[np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    previous = write_video(tmp_path / "clip.gif", frames, sidecar={"run": 1})
    before = previous.read_bytes()
    # Room for every frame but not the one-byte GIF trailer written by close().
    monkeypatch.setattr(encode, "open", SmallDisk(len(before) - 1).open, raising=False)
    with pytest.raises(RuntimeFailure, match="disk is full"):
        write_video(previous, frames, sidecar={"run": 2})
    assert previous.read_bytes() == before
    assert json.loads((tmp_path / "clip.json").read_text())["run"] == 1
    assert leftovers(tmp_path) == []
