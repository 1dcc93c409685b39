"""The effect gallery: a small looping clip per effect and an index.html listing all."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from kandanim.cli import app
from kandanim.errors import UserError
from kandanim.pictures import gallery
from kandanim.pictures.effect_plans import effect_plan
from kandanim.pictures.gallery import (
    INDEX,
    MAX_CLIP_BYTES,
    Clip,
    index_html,
    render_gallery,
    write_clip,
)
from kandanim.presets import load_catalogue

CATALOGUE = load_catalogue()
SECONDS = 0.5  # 12 frames rendered, 6 kept: the real clips run 4 s
FRAME_MS = round(1000 / gallery.CLIP_FPS)


def frame_durations(image: Image.Image) -> list[int]:
    """Milliseconds of every stored frame (the encoder merges identical neighbours)."""
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        image.load()  # Pillow fills in a frame's timing when it decodes it
        durations.append(image.info["duration"])
    return durations


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Clip]]:
    folder = tmp_path_factory.mktemp("gallery") / "new" / "folder"
    seen: list[tuple[str, int, int]] = []
    clips = render_gallery(
        folder, CATALOGUE, resolution="64x64", seconds=SECONDS,
        on_clip=lambda clip, done, total: seen.append((clip.name, done, total)),
    )
    assert seen == [(c.name, i + 1, len(clips)) for i, c in enumerate(clips)]
    return folder, clips


def test_every_effect_has_a_looping_clip(built: tuple[Path, list[Clip]]) -> None:
    folder, clips = built
    names = [p.name for p in CATALOGUE.presets()]
    assert len(names) == 18
    assert [c.name for c in clips] == names
    assert sorted(p.name for p in folder.glob("*.webp")) == sorted(f"{n}.webp" for n in names)
    for clip in clips:
        path = folder / clip.file
        assert path.stat().st_size == clip.size_bytes <= MAX_CLIP_BYTES
        with Image.open(path) as image:
            assert image.format == "WEBP" and image.is_animated
            assert clip.frames == 6
            assert sum(frame_durations(image)) == 6 * FRAME_MS  # 0.5 s at 12 fps
            assert image.size == (clip.width, clip.height) == (64, 64)
            assert image.info.get("loop") == 0  # loops forever
    assert not list(folder.glob(".*partial"))


def test_index_lists_all_effects(built: tuple[Path, list[Clip]]) -> None:
    folder, _ = built
    page = (folder / INDEX).read_text(encoding="utf-8")
    assert page.count("<figure") == 18
    for preset in CATALOGUE.presets():
        assert f'src="{preset.name}.webp"' in page
        assert f"<h2>{preset.name}</h2>" in page
        assert html.escape(preset.description) in page
        for alias in CATALOGUE.aliases_of(preset.name):
            assert html.escape(alias) in page
    assert "aliases: around_right" in page  # orbit-right's deforum-kandinsky name


def test_clips_follow_the_preview_frames(tmp_path: Path) -> None:
    """A clip is the preview render of the effect, every other frame (24 → 12 fps)."""
    preset = CATALOGUE.get("zoom-in")
    frames = gallery.render_frames(effect_plan(preset, duration=SECONDS, resolution="64x64"))
    assert len(frames) == 12 and not np.array_equal(frames[0], frames[-1])
    write_clip(frames[::2], tmp_path / "z.webp", gallery.CLIP_FPS)
    with Image.open(tmp_path / "z.webp") as image:
        assert frame_durations(image) == [FRAME_MS] * 6  # zoom-in: every frame differs
        image.seek(0)
        first = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert np.abs(first - frames[0]).mean() < 8  # lossy, but the same picture


def test_clips_are_squeezed_under_the_size_cap(tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    size, (width, height) = write_clip(list(noise), tmp_path / "n.webp", 12, max_bytes=20_000)
    assert size <= 20_000 and (tmp_path / "n.webp").stat().st_size == size
    assert width < 96 and width == height  # the quality ladder alone was not enough


def test_index_escapes_text() -> None:
    clip = Clip(
        name="odd", description='<script>alert("x")</script> & more', aliases=("a<b",),
        motion="z +0.1/s", file='odd".webp', size_bytes=1, frames=1, width=8, height=8,
    )
    page = index_html([clip], "note <b>")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a&lt;b" in page and 'src="odd&quot;.webp"' in page and "note &lt;b&gt;" in page


def test_gallery_on_a_file_is_a_user_error(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="that is a file"):
        render_gallery(target, CATALOGUE, seconds=SECONDS)
    assert target.read_text(encoding="utf-8") == "mine"


def test_gallery_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gallery, "SHOW_SECONDS", SECONDS)
    photo = tmp_path / "photo.png"
    Image.fromarray(
        np.random.default_rng(2).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    ).save(photo)
    out = tmp_path / "gallery"
    result = CliRunner().invoke(
        app, ["effects", "--gallery", str(out), "--image", str(photo), "--resolution", "64x64"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / INDEX)
    assert "gallery: 18/18" in result.stderr
    assert len(list(out.glob("*.webp"))) == 18
    assert "on photo.png" in (out / INDEX).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "extra", [["--image", "{tmp}/missing.png"], ["--resolution", "65x64"]]
)
def test_gallery_bad_input_exits_2(extra: list[str], tmp_path: Path) -> None:
    arguments = ["effects", "--gallery", str(tmp_path / "g"), *extra]
    result = CliRunner().invoke(app, [a.format(tmp=tmp_path) for a in arguments])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "g").exists()  # refused before anything was written


def test_readme_shows_the_committed_gallery() -> None:
    """The README's grid names every effect; its clips (from `make gallery`) are committed
    under docs/ within the size budget of the issue: ≤ 300 KB each, ≤ 8 MB in all."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    for preset in CATALOGUE.presets():
        clip = root / "docs" / "gallery" / f"{preset.name}.webp"
        assert f'src="docs/gallery/{preset.name}.webp"' in readme
        assert 0 < clip.stat().st_size <= MAX_CLIP_BYTES, clip
    assert (root / "docs" / "gallery" / INDEX).is_file()
    assert "](docs/demo-plan.png)" in readme and (root / "docs" / "demo-plan.png").is_file()
    total = sum(p.stat().st_size for p in (root / "docs").rglob("*") if p.is_file())
    assert total <= 8_000_000
