"""`kandanim preview … --contact-sheet FILE.png`: the preview plus a labelled frame grid."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from kandanim.cli import app


def test_preview_writes_a_contact_sheet(tmp_path: Path) -> None:
    video, sheet = tmp_path / "zoom.mp4", tmp_path / "sheets" / "zoom.png"
    result = CliRunner().invoke(app, [
        "preview", "--effect", "zoom-in", "--duration", "0.5", "--resolution", "64x64",
        "-o", str(video), "--contact-sheet", str(sheet), "--quiet",
    ])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(video), str(sheet)]  # results only, one per line
    with Image.open(sheet) as image:
        assert image.format == "PNG"
        width, height = image.size
    # 8 of the 12 frames in rows of 4, each 256 px wide plus gaps, with a label strip
    assert width == 4 * (256 + 6) + 6
    assert height > 2 * 256


def test_contact_sheet_must_be_png_and_is_checked_first(tmp_path: Path) -> None:
    video = tmp_path / "zoom.mp4"
    result = CliRunner().invoke(app, [
        "preview", "--effect", "zoom-in", "--duration", "0.5", "--resolution", "64x64",
        "-o", str(video), "--contact-sheet", str(tmp_path / "sheet.jpg"), "--quiet",
    ])
    assert result.exit_code == 2
    assert ".png" in result.stderr and "Traceback" not in result.output
    assert not video.exists()  # refused before rendering
