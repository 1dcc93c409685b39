"""A contact sheet: evenly spaced frames of a video in a labelled grid, as one PNG.

    python -m kandanim.tools.contact_sheet out/demo.mp4 sheet.png --count 8

Reads anything `kandanim.encode` writes (MP4, WebM, GIF, a PNG frame folder). The first
and last frames are always included; each cell is labelled with its frame number (and
its time in seconds, for video files).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kandanim.encode import frame_files, iter_frames
from kandanim.errors import KandanimError, RuntimeFailure, UserError

BACKGROUND = (24, 24, 24)
LABEL_COLOUR = (235, 235, 235)
GAP = 6  # pixels between cells and around the sheet


def pick_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames, first and last included."""
    if total < 1 or count < 1:
        return []
    if count == 1:
        return [0]
    spread = np.linspace(0, total - 1, min(count, total))
    return sorted({round(float(value)) for value in spread})


def frame_times(path: Path) -> list[float | None]:
    """Presentation time of every frame in seconds (None for a PNG folder), not decoding.

    Times come from packet timestamps, which stay right where a GIF's delays vary.
    """
    if path.is_dir():
        return [None] * len(frame_files(path))
    if not path.exists():
        raise UserError(f"{path} does not exist")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise UserError(f"cannot open the video {path}: {error}") from None
    with container:
        if not container.streams.video:
            raise UserError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stamps = [
            packet.pts * packet.time_base if packet.pts is not None else None
            for packet in container.demux(stream)
            if packet.size
        ]
    if any(stamp is None for stamp in stamps):
        return [None] * len(stamps)
    start = min(stamps, default=0)
    return [float(stamp - start) for stamp in sorted(stamps)]  # decode order → display order


Labelled = tuple[int, float | None, np.ndarray]  # frame index, seconds, RGB uint8 frame


def sample_frames(path: Path, count: int) -> list[Labelled]:
    """The picked frames with their index and time, decoding the video once."""
    times = frame_times(path)
    wanted = set(pick_indices(len(times), count))
    picked: list[Labelled] = []
    for index, frame in enumerate(iter_frames(path)):
        if index in wanted:
            picked.append((index, times[index] if index < len(times) else None, frame))
            if len(picked) == len(wanted):
                break
    return picked


def render_sheet(
    frames: Sequence[Labelled],
    *,
    columns: int | None = None,
    thumb_width: int = 256,
) -> Image.Image:
    """Lay the frames out in a grid with a label under each."""
    if not frames:
        raise UserError("the video has no frames to show")
    height, width = frames[0][2].shape[:2]
    thumb_height = max(1, round(thumb_width * height / width))
    columns = columns or min(len(frames), 4)
    rows = math.ceil(len(frames) / columns)
    font = _label_font(max(10, thumb_width // 18))
    label_height = round(font.size * 1.6)
    cell_w, cell_h = thumb_width + GAP, thumb_height + label_height + GAP
    sheet = Image.new("RGB", (columns * cell_w + GAP, rows * cell_h + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for slot, (index, seconds, frame) in enumerate(frames):
        left = GAP + (slot % columns) * cell_w
        top = GAP + (slot // columns) * cell_h
        thumb = cv2.resize(frame, (thumb_width, thumb_height), interpolation=cv2.INTER_AREA)
        sheet.paste(Image.fromarray(thumb), (left, top))
        draw.text(
            (left + 2, top + thumb_height + label_height // 5),
            _label(index, seconds),
            fill=LABEL_COLOUR,
            font=font,
        )
    return sheet


def _label(index: int, seconds: float | None) -> str:
    return f"#{index}" if seconds is None else f"#{index}   {seconds:.2f} s"


def _label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's built-in font scales when Pillow has FreeType (its wheels do).
    return ImageFont.load_default(size=size)


def contact_sheet(
    video: Path,
    out: Path,
    *,
    count: int = 8,
    columns: int | None = None,
    thumb_width: int = 256,
) -> Path:
    """Write the contact sheet of `video` to `out` (PNG) and return `out`.

    Raises UserError for a video that cannot be read or bad counts, RuntimeFailure when
    the sheet cannot be written.
    """
    if count < 1 or thumb_width < 16 or (columns is not None and columns < 1):
        raise UserError("--count and --columns must be at least 1, --width at least 16")
    frames = sample_frames(Path(video), count)
    sheet = render_sheet(frames, columns=columns, thumb_width=thumb_width)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(out, format="PNG")
    except OSError as error:
        raise RuntimeFailure(f"cannot write {out}: {error.strerror or error}") from None
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kandanim.tools.contact_sheet",
        description="Write a grid of evenly spaced, numbered frames of a video as one PNG.",
    )
    parser.add_argument("video", type=Path, help="MP4, WebM, GIF or a folder of PNG frames")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--count", type=int, default=8, help="frames to show (default 8)")
    parser.add_argument("--columns", type=int, default=None, help="grid columns (default ≤ 4)")
    parser.add_argument("--width", type=int, default=256, help="width of each frame in pixels")
    args = parser.parse_args(argv)
    try:
        contact_sheet(
            args.video, args.out, count=args.count, columns=args.columns, thumb_width=args.width
        )
    except KandanimError as error:
        hint = f"\nhint: {error.hint}" if error.hint else ""
        sys.stderr.write(f"error: {error.message}{hint}\n")
        return error.exit_code
    except OSError as error:
        sys.stderr.write(f"error: cannot write {args.out}: {error.strerror or error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
