"""Reading a soundtrack: is it there, does it hold sound FFmpeg decodes (PyAV only).

Both the screenplay loader (so `validate` finds what `render` would) and the writer use
these, so there is one rule for what a usable soundtrack is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from kandanim.errors import UserError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration: float | None  # seconds, None when the container does not say


def probe_audio(path: PathLike) -> AudioInfo:
    """Check cheaply that `path` holds decodable audio (opens it, decodes one frame)."""
    container = open_audio_input(Path(path))
    try:
        stream = container.streams.audio[0]
        try:
            next(container.decode(stream))
        except StopIteration:
            raise UserError(f"the audio file {path} holds no sound") from None
        except av.FFmpegError as error:
            raise undecodable(Path(path), error) from None
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return AudioInfo(
            codec=stream.codec_context.name,
            sample_rate=stream.rate,
            channels=stream.channels,
            duration=duration,
        )
    finally:
        container.close()


def open_audio_input(path: Path) -> av.container.InputContainer:
    """The opened file with at least one audio stream; UserError naming the problem."""
    if not path.is_file():
        raise UserError(
            f"the audio file {path} does not exist",
            hint="check `audio: path:` (paths are relative to the screenplay)",
        )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise undecodable(path, error) from None
    if not container.streams.audio:
        container.close()
        raise UserError(f"the file {path} has no audio stream", hint="use an audio file")
    return container


def undecodable(path: Path, error: Exception) -> UserError:
    """The error for a file FFmpeg cannot decode as sound."""
    return UserError(
        f"cannot decode the audio file {path}: {error}",
        hint="use a common format (mp3, wav, flac, m4a, ogg, opus)",
    )
