"""A new user's first hour (issue 9): validate finds what render would, what is shared holds
no private paths, and the small things a demanding user expects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_run import kandanim
from PIL import Image
from typer.testing import CliRunner

from kandanim.cli import app
from kandanim.encode import read_metadata

SCRIPT = """\
version: 1
fps: 24
resolution: 64x64
seed: 3
engine: preview
scenes:
  - prompt: "a valley"
    effect: zoom-in
    duration: 0.5
"""


def write(folder: Path, text: str, name: str = "film.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- validate = render


def test_a_scene_shorter_than_a_frame_fails_validate_at_its_position(tmp_path: Path) -> None:
    script = write(tmp_path, SCRIPT.replace("duration: 0.5", "duration: 0.01"))
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2
    assert f"{script}:9:15: scene 1: duration: 0.01 s is less than one frame at 24 fps" in (
        result.output
    )
    plan = CliRunner().invoke(app, ["plan", str(script)])
    assert plan.exit_code == 2 and f"{script}:9:15" in plan.output


def test_defaults_duration_too_short_is_reported_once_at_defaults(tmp_path: Path) -> None:
    text = SCRIPT.replace("engine: preview\n", "engine: preview\nfps: 1\ndefaults: {duration: 0.2}\n")
    text = text.replace("fps: 24\n", "").replace("    duration: 0.5\n", "")
    script = write(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2 and result.output.count("less than one frame") == 1
    assert "defaults: duration" in result.output


def test_validate_checks_the_output_format_and_readable_pictures(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff this is not a jpeg")
    text = SCRIPT.replace("seed: 3\n", "seed: 3\noutput: film.avi\n")
    text = text.replace("effect: zoom-in", "effect: zoom-in\n    init_image: photo.jpg")
    script = write(tmp_path, text)
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2
    assert f"{script}:5:9: output:" in result.output and ".mp4" in result.output
    assert "scene 1: init_image: cannot read 'photo.jpg' as a picture" in result.output


def test_an_init_image_url_says_download_it_first(tmp_path: Path) -> None:
    text = SCRIPT.replace("effect: zoom-in",
                          "effect: zoom-in\n    init_image: https://example.com/cat.jpg")
    result = CliRunner().invoke(app, ["validate", str(write(tmp_path, text))])
    assert result.exit_code == 2
    assert "download the file first" in result.output
    assert "https:/example.com" not in result.output  # no mangled path


# ----------------------------------------------------------------------------- private paths


def test_shared_files_hold_no_private_paths(tmp_path: Path) -> None:
    trip = tmp_path / "home" / "alice-smith" / "Pictures" / "trip"
    trip.mkdir(parents=True)
    Image.new("RGB", (80, 60), (200, 120, 40)).save(trip / "kids.png")
    text = SCRIPT.replace("effect: zoom-in", "effect: zoom-in\n    init_image: kids.png")
    script = write(trip, text, "trip.yaml")
    result = kandanim("render", script)
    assert result.returncode == 0, result.stderr
    video, sidecar = trip / "trip.mp4", trip / "trip.json"
    shared = json.dumps(read_metadata(video)) + sidecar.read_text()
    assert "alice-smith" not in shared and str(tmp_path) not in shared
    document = json.loads(sidecar.read_text())
    assert document["plan"]["scenes"][0]["init_image"] == "kids.png"
    assert len(document["plan"]["inputs"]["kids.png"]) == 64  # sha256: re-render checks content


def test_a_preview_of_a_private_picture_stores_only_its_name(tmp_path: Path) -> None:
    pictures = tmp_path / "home" / "alice-smith" / "Pictures"
    pictures.mkdir(parents=True)
    Image.new("RGB", (80, 60), (20, 120, 240)).save(pictures / "kids.png")
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = kandanim("preview", "--image", pictures / "kids.png", "--duration", "0.25",
                      "--resolution", "64x64", "-o", "p.mp4", cwd=work)
    assert result.returncode == 0, result.stderr
    shared = json.dumps(read_metadata(work / "p.mp4")) + (work / "p.json").read_text()
    assert "alice-smith" not in shared and "kids.png" in shared


# ----------------------------------------------------------------------------- the small ones


def test_plan_timecodes_count_frames_after_a_colon(tmp_path: Path) -> None:
    text = SCRIPT.replace("duration: 0.5", "duration: 1.125") + (
        "  - prompt: b\n    effect: zoom-out\n    duration: 1\n"
    )
    result = CliRunner().invoke(app, ["plan", str(write(tmp_path, text))],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "00:00:01:03" in result.output and "00:00:01.03" not in result.output


def test_effect_summaries_say_what_they_measure() -> None:
    result = CliRunner().invoke(app, ["effects"], env={"COLUMNS": "250"})
    line = next(row for row in result.output.splitlines() if "orbit-right" in row)
    assert "mean over 4 s" in line


def test_a_dissolve_longer_than_its_scenes_is_shortened_with_a_notice(tmp_path: Path) -> None:
    text = SCRIPT.replace("seed: 3\n", "seed: 3\ntransition: {type: dissolve, duration: 3}\n")
    text += "  - prompt: b\n    effect: zoom-out\n    duration: 0.5\n"
    result = kandanim("render", write(tmp_path, text), "-q")
    assert result.returncode == 0, result.stderr
    assert "scene 2: the 3 s dissolve is longer than its scenes allow; shortened to" in (
        result.stderr
    )


def test_a_failed_preview_leaves_no_work_folder(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    Image.effect_noise((128, 128), 60).convert("RGB").save(whole)
    broken = tmp_path / "photo.png"  # its header reads fine; its pixels are cut off
    broken.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = kandanim("preview", "--image", broken, "--duration", "0.25", "--resolution", "64x64",
                      "-o", tmp_path / "p.mp4")
    assert result.returncode == 2, result.stderr
    assert not list(tmp_path.glob("*.kandanim-work")), "the next run would claim to resume"


@pytest.mark.parametrize(
    ("text", "field"),
    [("scenes:\n  - {prompt: a, effect: zoom-ot}\n", "scene 1: effect"),
     ("scenes:\n  - {prompt: a}\n  - {prompt: b, init_image: nothing.png}\n",
      "scene 2: init_image")],
)
def test_messages_name_fields_as_the_user_wrote_them(tmp_path: Path, text: str,
                                                     field: str) -> None:
    result = CliRunner().invoke(app, ["validate", str(write(tmp_path, text))])
    assert result.exit_code == 2 and f": {field}: " in result.output
    assert "scenes.1" not in result.output and "scenes.0" not in result.output


def _tone(path: Path, seconds: float, amplitude: float = 0.5) -> Path:
    import wave

    import numpy as np

    rate = 48_000
    t = np.arange(round(seconds * rate)) / rate
    samples = (amplitude * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def _envelope(video: Path, window: float = 0.02) -> tuple[list[float], int]:
    """Peak level per `window` seconds of the first audio stream (left channel)."""
    import av
    import numpy as np

    with av.open(str(video)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = [frame.to_ndarray()[0] for frame in container.decode(stream)]
    samples = np.abs(np.concatenate(chunks))
    step = round(window * rate)
    return [float(samples[i:i + step].max()) for i in range(0, len(samples) - step, step)], step


def test_a_short_sound_reaches_its_level_and_fades_out_where_it_ends(tmp_path: Path) -> None:
    import numpy as np

    from kandanim.encode import AudioTrack, open_writer

    sound = _tone(tmp_path / "ding.wav", 0.7)
    out = tmp_path / "clip.mp4"
    with open_writer(out, width=64, height=64, fps=24,
                     audio=AudioTrack(sound, volume=1.0, fade=1.0)) as writer:
        for _ in range(48):  # 2 s of video, longer than the sound
            writer.write(np.zeros((64, 64, 3), np.uint8))
    peaks, _ = _envelope(out)
    assert max(peaks) > 0.45, "the fade is at most half the sound: the level is reached"
    loud = [i for i, p in enumerate(peaks) if p > 0.02]
    last = loud[-1] * 0.02
    assert 0.6 <= last <= 0.72
    assert peaks[loud[-1]] < 0.1, "the fade-out ends where the sound ends, not abruptly"


# ----------------------------------------------------------------------------- any even size


def test_any_even_size_renders_at_the_enclosing_multiple_of_64_and_is_cropped(
    tmp_path: Path,
) -> None:
    import av

    script = write(tmp_path, SCRIPT.replace("resolution: 64x64", "resolution: 100x70"))
    plan = CliRunner().invoke(app, ["plan", str(script)], env={"COLUMNS": "200"})
    assert plan.exit_code == 0, plan.output
    assert "100×70 (rendered at 128×128, centre-cropped)" in plan.output
    as_json = json.loads(CliRunner().invoke(app, ["plan", "--json", str(script)]).output)
    assert (as_json["width"], as_json["height"]) == (128, 128)
    assert (as_json["output_width"], as_json["output_height"]) == (100, 70)
    result = kandanim("render", script)
    assert result.returncode == 0, result.stderr
    assert "centre-cropping to 100x70" in result.stderr
    with av.open(str(tmp_path / "film.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (100, 70)
        assert len(list(container.decode(stream))) == 12


def test_1920x1080_is_accepted_and_odd_sizes_get_an_aspect_keeping_suggestion(
    tmp_path: Path,
) -> None:
    full_hd = write(tmp_path, SCRIPT.replace("64x64", "1920x1080"), "hd.yaml")
    assert CliRunner().invoke(app, ["validate", str(full_hd)]).exit_code == 0
    odd = write(tmp_path, SCRIPT.replace("64x64", "853x480"), "odd.yaml")
    result = CliRunner().invoke(app, ["validate", str(odd)])
    assert result.exit_code == 2 and "'832x448' keeps the aspect" in result.output


def test_defaults_take_every_scene_field(tmp_path: Path) -> None:
    from kandanim.plan import build_plan
    from kandanim.screenplay import load_screenplay

    Image.new("RGB", (64, 64), (10, 80, 160)).save(tmp_path / "photo.png")
    script = write(tmp_path, (
        "version: 1\nseed: 1\nfps: 8\n"
        "defaults: {effect: orbit-right, init_image: photo.png, prompt: a harbour, duration: 1}\n"
        "scenes:\n  - {}\n  - {prompt: a tower, effect: zoom-out}\n"
    ))
    plan = build_plan(load_screenplay(script))
    first, second = plan.scenes
    assert (first.effect, first.prompt, first.init_image) == (
        "orbit-right", "a harbour", (tmp_path / "photo.png").resolve())
    assert (second.effect, second.prompt) == ("zoom-out", "a tower")
    typo = write(tmp_path, "defaults: {effect: orbit-rihgt}\nscenes:\n  - {prompt: a}\n"
                 "  - {prompt: b}\n", "typo.yaml")
    result = CliRunner().invoke(app, ["validate", str(typo)])
    assert result.exit_code == 2 and result.output.count("orbit-right") == 1
    assert f"{typo}:1:20: defaults: effect" in result.output


def test_a_scene_without_any_prompt_is_reported(tmp_path: Path) -> None:
    script = write(tmp_path, "scenes:\n  - {effect: zoom-in}\n")
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2 and "scene 1: prompt: missing required field" in result.output


def test_validate_finds_a_soundtrack_the_writer_could_not_use(tmp_path: Path) -> None:
    (tmp_path / "music.mp3").write_bytes(b"ID3 not really music")
    script = write(tmp_path, SCRIPT + "audio: {path: music.mp3}\n")
    result = CliRunner().invoke(app, ["validate", str(script)])
    assert result.exit_code == 2
    assert f"{script}:10:15: audio: path: cannot decode the audio file" in result.output
