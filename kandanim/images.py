"""Reading users' pictures: any orientation, mode or size → an RGB frame of the plan's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kandanim.errors import UserError


def load_image(path: Path, width: int, height: int) -> np.ndarray:
    """RGB uint8 (height, width, 3): EXIF-rotated, scaled to cover the frame, centre-cropped."""
    try:
        with Image.open(path) as opened:
            opened.load()
            picture = ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise UserError(f"image not found: {path}", hint="check the path (relative paths "
                        "start from the screenplay's folder)") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as error:
        raise UserError(
            f"cannot read image {path}: {error}",
            hint="use a PNG, JPEG or WebP file",
        ) from None
    picture = _to_rgb(picture)
    return np.asarray(ImageOps.fit(picture, (width, height), Image.Resampling.LANCZOS))


def _to_rgb(picture: Image.Image) -> Image.Image:
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        # transparent areas become white, not black
        background = Image.new("RGB", picture.size, (255, 255, 255))
        background.paste(picture.convert("RGBA"), mask=picture.convert("RGBA").getchannel("A"))
        return background
    if picture.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(picture, dtype=np.float32)
        array = array / max(float(array.max()), 1.0) * 255.0
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    return picture.convert("RGB")
