"""Loading users' pictures (any mode, orientation, size) and writing PNG frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kandanim.errors import UserError
from kandanim.images import load_image, save_png

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _thirds(width: int, height: int, vertical: bool = False) -> np.ndarray:
    """Red | green | blue in thirds across (or down) the picture."""
    image = np.zeros((height, width, 3), np.uint8)
    length = height if vertical else width
    cuts = (length // 3, 2 * length // 3)
    for colour, (start, stop) in zip((RED, GREEN, BLUE),
                                     ((0, cuts[0]), cuts, (cuts[1], length))):
        if vertical:
            image[start:stop] = colour
        else:
            image[:, start:stop] = colour
    return image


def _save(path: Path, array: np.ndarray, **options: object) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


# ----------------------------------------------------------------------------- cover & crop


def test_wide_picture_in_a_square_frame_keeps_the_middle(tmp_path: Path) -> None:
    path = _save(tmp_path / "wide.png", _thirds(300, 100))
    frame = load_image(path, 64, 64)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    # scaled to 192×64, the middle 64 columns are the green third (Lanczos rings a
    # little into the outermost columns, at the red and blue boundaries)
    assert np.abs(frame[:, 2:-2].astype(int) - GREEN).max() <= 2


def test_tall_picture_in_a_landscape_frame_keeps_the_middle(tmp_path: Path) -> None:
    path = _save(tmp_path / "tall.png", _thirds(100, 600, vertical=True))
    frame = load_image(path, 128, 64)
    assert frame.shape == (64, 128, 3)
    # scaled to 128×768, the middle 64 rows lie inside the green third
    assert np.abs(frame.astype(int) - GREEN).max() <= 2


def test_cover_never_stretches(tmp_path: Path) -> None:
    """A circle stays a circle whatever the frame's aspect ratio."""
    size = 200
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - 99.5) ** 2 + (xx - 99.5) ** 2 < 30**2)  # fits any centre crop
    image = np.where(disc[..., None], np.uint8(255), np.uint8(0)).repeat(3, axis=2)
    path = _save(tmp_path / "disc.png", image)
    for width, height in ((128, 64), (64, 128), (100, 100)):
        frame = load_image(path, width, height)[..., 0] > 127
        rows, cols = np.nonzero(frame)
        extent_y, extent_x = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert abs(extent_x - extent_y) <= 2, (width, height, extent_x, extent_y)


def test_upscaling_a_small_picture(tmp_path: Path) -> None:
    path = _save(tmp_path / "small.png", _thirds(30, 20))
    frame = load_image(path, 96, 64)
    assert frame.shape == (64, 96, 3)
    assert tuple(frame[32, 5]) == RED and tuple(frame[32, 90]) == BLUE


# ----------------------------------------------------------------------------- modes


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = _thirds(120, 60, vertical=True)  # red on top as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    frame = load_image(path, 60, 120)  # displayed upright it is 60 wide, 120 tall
    # turned clockwise, the stored top (red) is on the right, the bottom (blue) on the left
    assert frame[60, 55, 0] > 200 and frame[60, 55, 2] < 60
    assert frame[60, 4, 2] > 200 and frame[60, 4, 0] < 60


def test_transparency_becomes_white(tmp_path: Path) -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # hidden colour under transparent pixels
    rgba[:, 20:, 3] = 255
    frame = load_image(_save(tmp_path / "alpha.png", rgba), 40, 40)
    assert np.all(frame[:, :18] == 255)
    assert np.all(frame[:, 22:] == (10, 20, 30))


def test_grey_and_palette_pictures_become_rgb(tmp_path: Path) -> None:
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
    frame = load_image(_save(tmp_path / "grey.png", grey), 64, 64)
    assert np.all(frame[..., 0] == frame[..., 1]) and np.all(frame[..., 1] == frame[..., 2])
    palette = Image.fromarray(_thirds(60, 30)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png", 60, 30).shape == (30, 60, 3)
    cmyk = Image.fromarray(_thirds(60, 30)).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.jpg")
    assert load_image(tmp_path / "cmyk.jpg", 60, 30)[15, 30, 1] > 150  # green stays green


def test_sixteen_bit_pictures_are_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (32, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    frame = load_image(path, 64, 32)
    assert frame[..., 0].min() <= 2 and frame[..., 0].max() >= 253
    assert np.all(np.diff(frame[16, :, 0].astype(int)) >= 0)  # still a ramp


# ----------------------------------------------------------------------------- errors


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="image not found: .*nowhere.png") as caught:
        load_image(tmp_path / "nowhere.png", 64, 64)
    assert caught.value.exit_code == 2 and caught.value.hint


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("text.png", b"this is not a picture", "not a picture"),
        ("empty.jpg", b"", "not a picture"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "damaged"),
    ],
)
def test_corrupt_files_are_user_errors(tmp_path: Path, name: str, content: bytes,
                                       reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=reason) as caught:
        load_image(path, 64, 64)
    assert name in caught.value.message


def test_truncated_file_is_a_user_error(tmp_path: Path) -> None:
    whole = _save(tmp_path / "whole.jpg", _thirds(200, 200), quality=90).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(UserError, match="cut.jpg.*(damaged|truncated)"):
        load_image(path, 64, 64)


def test_a_folder_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="folder"):
        load_image(tmp_path, 64, 64)


def test_unreadable_file_is_a_user_error(tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(tmp_path / "secret.png", _thirds(30, 30))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)  # chmod 0 means nothing to root (CI)
    with pytest.raises(UserError, match="secret.png: permission denied"):
        load_image(path, 64, 64)


# ----------------------------------------------------------------------------- writing


def test_save_png_round_trips_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (33, 47, 3), dtype=np.uint8)
    path = tmp_path / "frame.png"
    save_png(path, image)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), image)
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]  # no temporary left


def test_save_png_into_a_missing_folder_is_a_user_error(tmp_path: Path) -> None:
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UserError, match="does not exist"):
        save_png(tmp_path / "missing" / "frame.png", image)
    with pytest.raises(ValueError, match="RGB uint8"):
        save_png(tmp_path / "frame.png", image[..., 0])
