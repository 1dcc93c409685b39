"""Users' pictures in, PNG frames out.

`load_image` turns any picture a user points at (JPEG with EXIF rotation, PNG with
alpha, greyscale, 16-bit, palette, CMYK, WebP, …) into an RGB uint8 frame of the plan's
size: scaled to *cover* the frame and centre-cropped, never stretched. A missing,
unreadable or damaged file is a `UserError` naming the file and the reason.

`save_png` writes an RGB uint8 frame as PNG, atomically (a temporary name, then a rename),
so a finished-looking file is always complete.
"""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kandanim.errors import RuntimeFailure, UserError

_FORMATS_HINT = "use a PNG, JPEG or WebP picture"
_PATH_HINT = "paths in a screenplay are relative to the screenplay's folder"
_TRANSPARENT_BACKGROUND = (255, 255, 255)  # see-through areas become white, as on a page


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """RGB uint8 (height, width, 3): EXIF-rotated, scaled to cover the frame, centre-cropped.

    Raises `UserError` when the file is missing, a folder, unreadable, not a picture,
    damaged or absurdly large.
    """
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    path = Path(path)
    picture = _open(path, width, height)
    rgb = _to_rgb(picture)
    return _cover(rgb, width, height)


def save_png(path: Path, image: np.ndarray, compression: int = 1) -> None:
    """Write an RGB uint8 (H, W, 3) frame as PNG (`compression` 0–9: 1 is fast).

    A missing or read-only folder is a `UserError`; a full disk or other I/O failure a
    `RuntimeFailure`. Nothing is left under `path` unless the whole file was written.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {image.dtype} {image.shape}")
    path = Path(path)
    bgr = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise RuntimeFailure(f"could not encode a PNG for {path}")
    temporary = path.with_name(f".{path.name}.partial")
    try:
        temporary.write_bytes(encoded.tobytes())
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise _write_error(path, error) from None


# ----------------------------------------------------------------------------- reading


def _open(path: Path, width: int, height: int) -> Image.Image:
    """Open and fully decode `path`, EXIF-rotated; every failure becomes a UserError."""
    if not path.exists():
        raise UserError(f"image not found: {path}", hint=_PATH_HINT)
    if path.is_dir():
        raise UserError(f"cannot read image {path}: it is a folder, not a file",
                        hint=_FORMATS_HINT)
    try:
        with Image.open(path) as opened:
            # JPEG can decode at 1/2, 1/4, 1/8 size: ask for no less than the frame needs
            # in either orientation (EXIF may turn the picture a quarter turn)
            side = max(width, height)
            opened.draft("RGB", (side, side))
            opened.load()
            return ImageOps.exif_transpose(opened)
    except PermissionError:
        raise UserError(f"cannot read image {path}: permission denied",
                        hint="check the file's permissions") from None
    except UnidentifiedImageError:
        kind = _looks_like(path)
        reason = (f"it looks like a {kind} file but is damaged" if kind
                  else "not a picture format kandanim can read")
        raise UserError(f"cannot read image {path}: {reason}", hint=_FORMATS_HINT) from None
    except Image.DecompressionBombError as error:
        raise UserError(f"cannot read image {path}: too large ({error})",
                        hint="scale the picture down first") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or damaged data
        raise UserError(f"cannot read image {path}: the file is damaged or truncated "
                        f"({error})", hint=_FORMATS_HINT) from None


_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
}


def _looks_like(path: Path) -> str | None:
    """The format a file's first bytes announce (to tell damaged from foreign files)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((kind for magic, kind in _SIGNATURES.items() if head.startswith(magic)), None)


def _to_rgb(picture: Image.Image) -> Image.Image:
    """Any mode → 8-bit RGB: alpha over white, 16/32-bit and float scaled down."""
    if picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        picture.mode in ("P", "L", "RGB") and "transparency" in picture.info
    ):
        rgba = picture.convert("RGBA")
        background = Image.new("RGB", rgba.size, _TRANSPARENT_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if picture.mode.startswith("I") or picture.mode == "F":
        return Image.fromarray(_to_bytes(np.asarray(picture))).convert("RGB")
    return picture.convert("RGB")


def _to_bytes(values: np.ndarray) -> np.ndarray:
    """Greyscale of more than 8 bits (16-bit PNG, 32-bit int, float) → uint8."""
    is_float = np.issubdtype(values.dtype, np.floating)
    values = values.astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    if is_float and peak <= 1.0:
        scale = 255.0  # float pictures in [0, 1]
    elif peak <= 255.0:
        scale = 1.0
    elif peak <= 65535.0:
        scale = 255.0 / 65535.0  # 16-bit range
    else:
        scale = 255.0 / peak
    return np.clip(values * scale + 0.5, 0, 255).astype(np.uint8)


def _cover(picture: Image.Image, width: int, height: int) -> np.ndarray:
    """Scale so the picture covers width×height, then cut the centre out."""
    source_w, source_h = picture.size
    scale = max(width / source_w, height / source_h)
    scaled_w = max(width, math.ceil(source_w * scale - 1e-6))
    scaled_h = max(height, math.ceil(source_h * scale - 1e-6))
    if (scaled_w, scaled_h) != picture.size:
        # reducing_gap: shrink by whole factors first (fast), then Lanczos the rest
        picture = picture.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS,
                                 reducing_gap=3.0)
    left = (scaled_w - width) // 2
    top = (scaled_h - height) // 2
    cropped = picture.crop((left, top, left + width, top + height))
    return np.ascontiguousarray(np.asarray(cropped, dtype=np.uint8))


# ----------------------------------------------------------------------------- writing


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the folder itself is missing or read-only: nothing was left behind


def _write_error(path: Path, error: OSError) -> Exception:
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return UserError(f"cannot write {path}: the folder {path.parent} does not exist",
                         hint="create the folder or choose another output path")
    if isinstance(error, (PermissionError, IsADirectoryError)):
        return UserError(f"cannot write {path}: {error.strerror or error}",
                         hint="choose an output path you can write to")
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return RuntimeFailure(f"cannot write {path}: the disk is full",
                              hint="free some space or write to another disk")
    return RuntimeFailure(f"cannot write {path}: {error}")
