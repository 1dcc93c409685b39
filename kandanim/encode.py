"""Writing the video (SPEC §8): MP4, WebM, GIF or a PNG frame folder, plus audio and a sidecar.

The output path picks the format (`output_format`). Everything is written under a hidden
temporary name in the destination folder (`.demo.mp4.part-1a2b3c4d`) and `os.replace`d
into place by `VideoWriter.close()`, so a finished-looking file is always complete; an
error, `abort()` or an exception inside `with open_writer(...)` removes the temporary and
leaves the final path untouched. Frames stream straight into the encoder as they come,
so memory does not grow with the length of the video.

Formats, chosen for speed on a 2-core CPU (numbers in `benchmarks/bench_encode.py`):

* MP4: H.264 (libx264) yuv420p, CRF 18, preset `veryfast` (on moving, textured 640²
  frames: 2.4× faster than `medium`, within 0.2 dB PSNR, smaller files), BT.709
  converted and tagged, `+faststart`; audio AAC 48 kHz. x264 runs its AVX2 code, never
  AVX-512, so the same frames always give the same bytes (`X264_AVX2_ONLY`).
* WebM: VP9 (libvpx) CRF 30 in `realtime` mode, `cpu-used` 6, row multithreading (the
  `good` deadline is ~3× slower, too slow for a real-time preview); audio Opus 48 kHz.
* GIF: written frame by frame with Pillow's GIF blocks (FFmpeg's palettegen route is
  ~200× slower, and Pillow's `save_all` holds every frame in memory): one adaptive
  256-colour palette per frame (fast octree, no dithering: steadier between frames and
  smaller), looping forever. GIF delays are whole centiseconds, so the delays alternate
  (e.g. 4,4,4,5 cs at 24 fps) to keep the average rate exact; above 50 fps most viewers
  slow GIFs down. No audio.
* PNG folder: `000000.png`, `000001.png`, … (fast zlib level); no audio.

Metadata (`title`, `comment`, any custom key) is embedded in the container. What survives
a round trip through FFmpeg/PyAV (checked in `tests/test_encode.py`, read with
`read_metadata`):

* MP4: iTunes-style keys (`title`, `comment`, `description`, `artist`, `date`, …, see
  `MP4_STANDARD_KEYS`) always; any other key only with `movflags=use_metadata_tags`,
  which the writer switches on when a custom key is present. That flag stores *all* keys
  as QuickTime `mdta` items: FFmpeg (ffprobe, PyAV) reads them all back; players that
  expect `com.apple.quicktime.*` names there (Apple's) may then not show the title.
* WebM: every key (Matroska tags; FFmpeg stores them upper-case, `read_metadata` gives
  them back lower-case); `title` goes in the segment info.
* GIF: the `comment` value (or else `title`) as a GIF comment extension.
* PNG folder: none in the frames; the sidecar carries everything.

The sidecar `OUT.json` (`out/demo.mp4` → `out/demo.json`, folder `out/frames` →
`out/frames.json`) holds the caller's dictionary plus a `video` entry describing what was
written; `check_output` refuses to overwrite a JSON file there that is not one of ours.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import math
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, Protocol

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter
from PIL import GifImagePlugin, Image

from kandanim import __version__
from kandanim.audio import AudioInfo, open_audio_input, probe_audio, undecodable  # noqa: F401
from kandanim.errors import KandanimError, RuntimeFailure, UserError
from kandanim.outputs import (  # re-exported: the writer's public path helpers
    FILE_FORMATS,  # noqa: F401
    FRAME_FILE,
    FRAME_NAME,
    SIDECAR_KEY,
    OutputFormat,
    PathLike,
    check_output,  # noqa: F401
    ensure_writable_folder,
    output_format,
    reserve_name,
    sidecar_for,
    sidecar_path,  # noqa: F401
)

log = logging.getLogger(__name__)


MP4_VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast"}
# libx264's AVX-512 code reads leftover memory when the frame is not a multiple of 128 px
# wide (measured with libx264 build 165: at 64, 96, 192, 320 px a B-frame changed between
# identical encodes; 128, 256, 384 px never; mbtree off or AVX2 only: always the same bytes).
# Its AVX2 code wrote byte-identical files at 256, 512, 640 px in the same time, so CPUs
# with AVX-512 get AVX2.
X264_AVX2_ONLY = {"x264-params": "asm=AVX2"}
WEBM_VIDEO_OPTIONS = {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "6", "row-mt": "1"}
AUDIO_RATE = 48_000  # libopus accepts only 48/24/16/12/8 kHz; AAC is happy with 48 kHz too
AUDIO_BIT_RATE = {"mp4": 192_000, "webm": 128_000}
AUDIO_CODEC = {"mp4": ("aac", "fltp"), "webm": ("libopus", "flt")}
PNG_COMPRESSION = 1  # zlib level: ~3× faster than the default 6 for a few % larger files

# Keys the MP4 muxer keeps without `use_metadata_tags` (measured with av 18.1 / FFmpeg 8.1).
MP4_STANDARD_KEYS = frozenset(
    {
        "title", "comment", "description", "synopsis", "artist", "album", "album_artist",
        "composer", "date", "genre", "copyright", "grouping", "lyrics", "keywords", "show",
        "network",
    }
)

_WRITER_TAG = f"kandanim {__version__}"


# --------------------------------------------------------------------------- audio


@dataclass(frozen=True)
class AudioTrack:
    """A soundtrack: any file FFmpeg decodes, trimmed to the video, faded in and out."""

    path: Path
    volume: float = 1.0
    fade: float = 1.0  # seconds of fade-in at the start and fade-out at the end
    label: str | None = None  # how the sidecar names the file (never a private path); None: its name

    def __post_init__(self) -> None:
        if not (self.volume >= 0 and self.fade >= 0):
            raise ValueError(f"volume and fade must be >= 0, got {self.volume}, {self.fade}")


def fade_gain(
    start: int, count: int, *, rate: int, fade: float, volume: float, end: int | None
) -> np.ndarray:
    """Per-sample gain for samples [start, start+count): raised-cosine fades, times volume.

    `end` is the total length in samples when the fade-out is known, else None.
    """
    index = np.arange(start, start + count, dtype=np.float64)
    gain = np.full(count, volume, dtype=np.float64)
    if fade > 0:
        span = fade * rate
        gain *= np.sin(np.clip(index / span, 0.0, 1.0) * (np.pi / 2)) ** 2
        if end is not None:
            gain *= np.sin(np.clip((end - index) / span, 0.0, 1.0) * (np.pi / 2)) ** 2
    return gain.astype(np.float32)


class _AudioFeed:
    """Decodes the soundtrack and feeds the encoder, `fade` seconds behind the video.

    Samples older than `video time - fade` can no longer fall into the final fade-out, so
    they are encoded as the video advances; only the last `fade` seconds wait in memory
    for `finish` to learn the video's length.
    """

    def __init__(
        self, track: AudioTrack, stream: av.AudioStream, mux: Callable[[list[av.Packet]], None]
    ) -> None:
        self.track = track
        self._stream = stream
        self._mux = mux
        self._input = open_audio_input(track.path)
        source = self._input.streams.audio[0]
        # A fade never takes more than half the sound: a 0.7 s sound with a 1 s fade would
        # otherwise never reach its level.
        self._fade = min(track.fade, _duration(self._input, source) / 2)
        self._decoded = self._input.decode(source)
        # Mono is copied to both sides at full level (FFmpeg's upmix would lower it by
        # 3 dB); more than two channels are downmixed to stereo by FFmpeg.
        layout = "mono" if source.channels == 1 else "stereo"
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=AUDIO_RATE)
        self._pending: deque[np.ndarray] = deque()  # decoded (2, n) chunks, not yet encoded
        self._buffered = 0  # samples in `_pending`
        self._emitted = 0  # samples already sent to the encoder
        self._exhausted = False

    def advance(self, video_seconds: float) -> None:
        """Encode what is final once the video has reached `video_seconds`."""
        settled = math.floor((video_seconds - self._fade) * AUDIO_RATE)
        if settled - self._emitted >= AUDIO_RATE // 10:  # in 0.1 s steps, not per frame
            # decode a fade ahead: a sound that ends within it must fade out to its end
            self._decode_until(settled + math.ceil(self._fade * AUDIO_RATE))
            available = self._emitted + self._buffered
            if self._exhausted:  # the sound ends before the video: its fade-out ends with it
                self._emit(available, end=available)
                return
            self._emit(settled, end=None)

    def finish(self, video_seconds: float) -> None:
        """Encode the rest up to the end of the video or of the sound, whichever comes
        first, with the fade-out ending there, and flush."""
        end = round(video_seconds * AUDIO_RATE)
        self._decode_until(end)
        available = self._emitted + self._buffered
        if self._exhausted:
            end = min(end, available)
        self._emit(min(end, available), end=end)
        self._mux(self._stream.encode(None))

    def close(self) -> None:
        self._input.close()

    def _decode_until(self, sample: int) -> None:
        while not self._exhausted and self._emitted + self._buffered < sample:
            try:
                frame = next(self._decoded)
            except StopIteration:
                self._exhausted = True
                frames = self._resampler.resample(None)
            except av.FFmpegError as error:
                raise undecodable(self.track.path, error) from None
            else:
                frame.pts = None  # output timing is the sample count, not the file's stamps
                frames = self._resampler.resample(frame)
            for chunk in frames:
                samples = _as_stereo(chunk.to_ndarray())
                self._pending.append(samples)
                self._buffered += samples.shape[1]

    def _take(self, count: int) -> np.ndarray:
        """The next `count` buffered samples as one (2, count) array."""
        parts = []
        while count > 0:
            head = self._pending[0]
            if head.shape[1] <= count:
                parts.append(self._pending.popleft())
            else:
                parts.append(head[:, :count])
                self._pending[0] = head[:, count:]
            count -= parts[-1].shape[1]
        taken = np.concatenate(parts, axis=1)
        self._buffered -= taken.shape[1]
        return taken

    def _emit(self, upto: int, *, end: int | None) -> None:
        count = upto - self._emitted
        if count <= 0:
            return
        block = self._take(count)
        gain = fade_gain(
            self._emitted, count, rate=AUDIO_RATE, fade=self._fade,
            volume=self.track.volume, end=end,
        )
        samples = np.clip(block * gain, -1.0, 1.0)
        if not self._stream.format.is_planar:
            samples = samples.T.reshape(1, -1)  # packed: L R L R …
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32),
            format=self._stream.format.name,
            layout="stereo",
        )
        frame.sample_rate = AUDIO_RATE
        frame.time_base = Fraction(1, AUDIO_RATE)
        frame.pts = self._emitted
        self._emitted = upto
        self._mux(self._stream.encode(frame))


def _duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """Seconds of sound the file says it holds; infinity when it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return math.inf


def _as_stereo(planar: np.ndarray) -> np.ndarray:
    """(channels, n) float32 with one or two channels → (2, n)."""
    return np.repeat(planar, 2, axis=0) if planar.shape[0] == 1 else planar


# --------------------------------------------------------------------------- sinks


class _Sink(Protocol):
    """One format's encoder, writing into a temporary path the writer owns."""

    codec: str

    def write(self, frame: np.ndarray, index: int) -> None: ...
    def finish(self, frames: int) -> None: ...
    def discard(self) -> None: ...


class _ContainerSink:
    """MP4 or WebM through PyAV: H.264/VP9 video and an optional AAC/Opus track."""

    def __init__(
        self,
        temp: Path,
        fmt: Literal["mp4", "webm"],
        *,
        width: int,
        height: int,
        fps: int,
        audio: AudioTrack | None,
        metadata: dict[str, str],
    ) -> None:
        self.fps = fps
        self.codec = "h264" if fmt == "mp4" else "vp9"
        self._audio: _AudioFeed | None = None
        self._reformatter = VideoReformatter()
        lag = audio.fade if audio else 0.0
        self.container = av.open(
            str(temp), "w", format=fmt, options=_container_options(fmt, metadata, lag)
        )
        try:
            self.container.metadata.update(metadata)
            self._video = self._add_video_stream(fmt, width, height, fps)
            if audio is not None:  # every stream must exist before the first mux
                codec, sample_format = AUDIO_CODEC[fmt]
                stream = self.container.add_stream(
                    codec, rate=AUDIO_RATE, layout="stereo", format=sample_format
                )
                stream.bit_rate = AUDIO_BIT_RATE[fmt]
                self._audio = _AudioFeed(audio, stream, self._mux)
        except BaseException:
            self.discard()
            raise

    def _add_video_stream(
        self, fmt: str, width: int, height: int, fps: int
    ) -> av.VideoStream:
        codec, options = (
            ("libx264", x264_options()) if fmt == "mp4" else ("libvpx-vp9", WEBM_VIDEO_OPTIONS)
        )
        stream = self.container.add_stream(codec, rate=fps, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # Tag what we convert to: untagged, players guess BT.601 or BT.709 by frame size.
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
        context.color_range = ColorRange.MPEG
        return stream

    def _mux(self, packets: list[av.Packet]) -> None:
        self.container.mux(packets)

    def write(self, frame: np.ndarray, index: int) -> None:
        picture = self._reformatter.reformat(
            av.VideoFrame.from_ndarray(frame, format="rgb24"),
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
        )
        picture.pts = index
        self._mux(self._video.encode(picture))
        if self._audio is not None:
            self._audio.advance((index + 1) / self.fps)

    def finish(self, frames: int) -> None:
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.finish(frames / self.fps)
            self._audio.close()
        self.container.close()

    def discard(self) -> None:
        for closer in (self._audio.close if self._audio else None, self.container.close):
            if closer is not None:
                try:
                    closer()
                except Exception:  # already failing: the first error is the one to report
                    log.debug("ignored error while discarding the encoder", exc_info=True)


def x264_options() -> dict[str, str]:
    """libx264 options: `MP4_VIDEO_OPTIONS`, limited to AVX2 where the CPU has AVX-512."""
    return {**MP4_VIDEO_OPTIONS, **X264_AVX2_ONLY} if _has_avx512() else dict(MP4_VIDEO_OPTIONS)


@functools.cache
def _has_avx512() -> bool:
    """Whether this CPU has AVX-512 and everything x264's "AVX2" level uses.

    NumPy's runtime CPU detection is the only one at hand (private, hence the fallbacks);
    naming a level the CPU lacks would crash libx264, so unknown means no.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:  # NumPy 1.x
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    needed = ("AVX512F", "AVX2", "FMA3", "BMI", "BMI2", "LZCNT")
    return all(features.get(name, False) for name in needed)


def _container_options(fmt: str, metadata: dict[str, str], audio_lag: float) -> dict[str, str]:
    options: dict[str, str] = {}
    if fmt == "mp4":
        flags = "+faststart"
        if set(metadata) - MP4_STANDARD_KEYS:
            flags += "+use_metadata_tags"  # else FFmpeg drops custom keys silently
        options["movflags"] = flags
    if fmt == "webm":
        # Matroska writes random segment and track UIDs unless told to be bit-exact: the
        # same render must give the same file (SPEC §10)
        options["fflags"] = "+bitexact"
    if audio_lag:
        # Audio trails the video by the fade length; let the muxer wait that long to
        # interleave (default 10 s) instead of writing out-of-order chunks.
        options["max_interleave_delta"] = str(int((audio_lag + 10) * 1e6))
    return options


class _GifSink:
    """GIF written block by block: header once, then each frame with its own palette."""

    codec = "gif"

    def __init__(self, temp: Path, *, fps: int, comment: str | None) -> None:
        self.fps = fps
        self._comment = comment
        self._file = open(temp, "wb")  # noqa: SIM115 - open across write() calls

    def write(self, frame: np.ndarray, index: int) -> None:
        picture = Image.fromarray(frame).quantize(256, method=Image.Quantize.FASTOCTREE)
        if index == 0:
            info: dict[str, Any] = {"loop": 0}
            if self._comment:
                info["comment"] = self._comment
            header, _ = GifImagePlugin.getheader(picture, info=info)
            self._file.write(b"".join(header))
        delay_ms = 10 * gif_delay_centiseconds(index, self.fps)
        blocks = GifImagePlugin.getdata(picture, duration=delay_ms, include_color_table=True)
        self._file.write(b"".join(blocks))

    def finish(self, frames: int) -> None:
        self._file.write(b";")  # GIF trailer
        self._file.close()

    def discard(self) -> None:
        self._file.close()


def gif_delay_centiseconds(index: int, fps: int) -> int:
    """Delay of frame `index`: whole centiseconds whose running sum tracks index/fps."""
    return round((index + 1) * 100 / fps) - round(index * 100 / fps)


class _PngSink:
    """Numbered PNG frames in a temporary folder."""

    codec = "png"

    def __init__(self, temp: Path) -> None:
        self._folder = temp

    def write(self, frame: np.ndarray, index: int) -> None:
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
        if not ok:
            raise RuntimeFailure(f"could not encode frame {index} as PNG")
        with open(self._folder / FRAME_NAME.format(index=index), "wb") as fh:
            fh.write(data.tobytes())

    def finish(self, frames: int) -> None:
        pass

    def discard(self) -> None:
        pass


# --------------------------------------------------------------------------- writer


class VideoWriter:
    """Streams RGB frames into one output; see the module docstring for the guarantees.

    Use as a context manager: leaving the block normally finalises the output (as
    `close()` does, if not called already), leaving it with an exception aborts.
    """

    def __init__(
        self,
        path: Path,
        fmt: OutputFormat,
        *,
        width: int,
        height: int,
        fps: int,
        temp: Path,
        sink: _Sink,
        audio: AudioTrack | None,
        sidecar: dict[str, Any] | None,
    ) -> None:
        self.path = path
        self.format = fmt
        self.width, self.height, self.fps = width, height, fps
        self._temp = temp
        self._sink = sink
        self._audio = audio
        self._sidecar = sidecar
        self._frames = 0
        self._state: Literal["open", "closed", "aborted"] = "open"

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def sidecar_path(self) -> Path | None:
        return sidecar_for(self.path, self.format) if self._sidecar is not None else None

    def write(self, frame: np.ndarray) -> None:
        """Encode one RGB uint8 frame of shape (height, width, 3)."""
        self._require_open("write")
        self._check_frame(frame)
        self._guarded(lambda: self._sink.write(np.ascontiguousarray(frame), self._frames))
        self._frames += 1

    def close(self) -> Path:
        """Finish encoding, move the output into place, write the sidecar; return the path."""
        if self._state == "closed":
            return self.path
        self._require_open("close")
        if self._frames == 0:
            self.abort()
            raise ValueError(f"no frames were written to {self.path}")
        self._guarded(lambda: self._sink.finish(self._frames))
        self._guarded(self._publish)
        self._state = "closed"
        log.debug("wrote %s (%d frames)", self.path, self._frames)
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the final path is left as it was. Never raises."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._sink.discard()
        _remove_quietly(self._temp)

    def __enter__(self) -> VideoWriter:  # noqa: PYI034 - typing.Self needs 3.11
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state == "open":
            self.close()

    def _require_open(self, action: str) -> None:
        if self._state != "open":
            raise RuntimeError(f"cannot {action}: the writer for {self.path} is {self._state}")

    def _check_frame(self, frame: np.ndarray) -> None:
        expected = (self.height, self.width, 3)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = (
                f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame)
            )
            raise ValueError(f"frames must be uint8 arrays of shape {expected}, got {got}")

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run an encoder/disk step; on any failure remove the temporary and re-raise.

        OS and FFmpeg errors become `RuntimeFailure` (disk full, encoder failure).
        """
        try:
            action()
        except KandanimError:
            self.abort()
            raise
        except (OSError, av.FFmpegError) as error:
            self.abort()
            raise _write_failure(self.path, error) from error
        except BaseException:
            self.abort()
            raise

    def _publish(self) -> None:
        """Sidecar to a temporary first, then the output, then the sidecar, each atomically."""
        sidecar_temp = self._write_sidecar_temp() if self._sidecar is not None else None
        try:
            if self.format == "png":
                _publish_frame_folder(self._temp, self.path, self._frames)
            else:
                os.replace(self._temp, self.path)
            if sidecar_temp is not None:
                os.replace(sidecar_temp, sidecar_for(self.path, self.format))
        finally:
            if sidecar_temp is not None:
                _remove_quietly(sidecar_temp)

    def _write_sidecar_temp(self) -> Path:
        assert self._sidecar is not None
        target = sidecar_for(self.path, self.format)
        document = {**self._sidecar, SIDECAR_KEY: self._description()}
        text = json.dumps(document, indent=2, ensure_ascii=False, default=_json_default)
        temp = reserve_name(target.parent, f".{target.name}.part", directory=False)
        try:
            with open(temp, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except BaseException:
            _remove_quietly(temp)
            raise
        return temp

    def _description(self) -> dict[str, Any]:
        """The sidecar's `video` entry: what exactly was written."""
        audio = None
        if self._audio is not None and self.format in ("mp4", "webm"):
            audio = {
                "path": self._audio.label or self._audio.path.name,
                "volume": self._audio.volume,
                "fade": self._audio.fade,
                "codec": AUDIO_CODEC[self.format][0],
                "sample_rate": AUDIO_RATE,
            }
        return {
            "writer": _WRITER_TAG,
            "file": self.path.name,
            "format": self.format,
            "codec": self._sink.codec,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frames": self._frames,
            "duration": self._frames / self.fps,
            # how `check_output` later knows the file under this name is still ours
            "bytes": self._temp.stat().st_size if self._temp.is_file() else None,
            "audio": audio,
        }


def _write_failure(path: Path, error: OSError | av.FFmpegError) -> RuntimeFailure:
    code = getattr(error, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return RuntimeFailure(
            f"the disk is full: could not finish writing {path}; nothing was left behind",
            hint="free some space or choose another output folder with -o",
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RuntimeFailure(
            f"permission denied while writing {path}",
            hint="choose another output folder with -o",
        )
    return RuntimeFailure(f"could not write {path}: {error}")


def _json_default(value: object) -> object:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"the sidecar holds a {type(value).__name__}, which JSON cannot store")


def _publish_frame_folder(temp: Path, target: Path, frames: int) -> None:
    """Move finished frames into place: rename the folder, or fill an existing one."""
    if not target.exists():
        os.replace(temp, target)
        return
    for index in range(frames):
        name = FRAME_NAME.format(index=index)
        os.replace(temp / name, target / name)
    for stale in target.iterdir():  # frames of an earlier, longer render
        match = FRAME_FILE.match(stale.name)
        if match and int(match.group(1)) >= frames:
            stale.unlink()
    temp.rmdir()


def _remove_quietly(path: Path) -> None:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove the temporary %s", path, exc_info=True)


def open_writer(
    path: PathLike,
    *,
    width: int,
    height: int,
    fps: int,
    audio: AudioTrack | None = None,
    metadata: dict[str, str] | None = None,
    sidecar: dict[str, Any] | None = None,
) -> VideoWriter:
    """Open a streaming writer for `path` (format by `output_format`).

    Call `check_output` first (before any expensive work): this only creates the parent
    folder. `audio` is muxed into MP4/WebM and ignored, with a warning, for GIF/PNG.
    `sidecar` (JSON-serialisable; paths allowed) is written to `sidecar_path(path)` at
    close with a `video` entry added; None writes no sidecar.
    """
    fmt = output_format(path)
    target = Path(path)
    _check_writer_arguments(fmt, width, height, fps, metadata, sidecar)
    if audio is not None and fmt in ("gif", "png"):
        log.warning("%s output has no audio track; ignoring %s", fmt.upper(), audio.path)
        audio = None
    if fmt == "gif" and fps > 50:
        log.warning("GIF viewers slow down animations above 50 fps; %d fps asked", fps)
    ensure_writable_folder(target.parent)
    try:
        temp = reserve_name(target.parent, f".{target.name}.part", directory=fmt == "png")
    except OSError as error:
        raise _write_failure(target, error) from None
    try:
        sink = _make_sink(fmt, temp, width=width, height=height, fps=fps, audio=audio,
                          metadata=dict(metadata or {}))
    except KandanimError:
        _remove_quietly(temp)
        raise
    except (OSError, av.FFmpegError) as error:
        _remove_quietly(temp)
        raise _write_failure(target, error) from error
    except BaseException:
        _remove_quietly(temp)
        raise
    return VideoWriter(
        target, fmt, width=width, height=height, fps=fps, temp=temp, sink=sink,
        audio=audio, sidecar=None if sidecar is None else dict(sidecar),
    )


def _make_sink(
    fmt: OutputFormat,
    temp: Path,
    *,
    width: int,
    height: int,
    fps: int,
    audio: AudioTrack | None,
    metadata: dict[str, str],
) -> _Sink:
    if fmt in ("mp4", "webm"):
        return _ContainerSink(
            temp, fmt, width=width, height=height, fps=fps, audio=audio, metadata=metadata
        )
    if fmt == "gif":
        return _GifSink(temp, fps=fps, comment=metadata.get("comment") or metadata.get("title"))
    return _PngSink(temp)


def _check_writer_arguments(
    fmt: OutputFormat,
    width: int,
    height: int,
    fps: int,
    metadata: dict[str, str] | None,
    sidecar: dict[str, Any] | None,
) -> None:
    if width < 1 or height < 1 or fps < 1:
        raise ValueError(f"width, height and fps must be positive, got {width}, {height}, {fps}")
    if fmt in ("mp4", "webm") and (width % 2 or height % 2):
        raise UserError(
            f"{fmt.upper()} video needs even frame sides, got {width}x{height}",
            hint="use sides that are multiples of 64 (Kandinsky needs them anyway)",
        )
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"metadata must map str to str, got {key!r}: {type(value).__name__}")
    if sidecar is not None:
        if SIDECAR_KEY in sidecar:
            raise ValueError(f"the sidecar key {SIDECAR_KEY!r} is reserved for the writer")
        json.dumps(sidecar, default=_json_default)  # fail now, not after the render


# --------------------------------------------------------------------------- reading back


def read_metadata(path: PathLike) -> dict[str, str]:
    """Container metadata of a video we wrote, keys lower-cased (Matroska upper-cases them)."""
    with av.open(os.fspath(path)) as container:
        return {key.lower(): value for key, value in container.metadata.items()}


def iter_frames(path: PathLike) -> Iterator[np.ndarray]:
    """Decode an output back into RGB uint8 frames: a video file or a PNG frame folder."""
    target = Path(path)
    if target.is_dir():
        for frame_file in frame_files(target):
            image = cv2.imread(str(frame_file), cv2.IMREAD_COLOR)
            if image is None:
                raise UserError(f"cannot read the frame {frame_file}")
            yield cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return
    try:
        container = av.open(str(target))
    except (av.FFmpegError, OSError) as error:
        raise UserError(f"cannot open the video {target}: {error}") from None
    with container:
        if not container.streams.video:
            raise UserError(f"{target} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def frame_files(folder: PathLike) -> list[Path]:
    """The numbered frames of a PNG output folder, in order."""
    return sorted(p for p in Path(folder).iterdir() if FRAME_FILE.match(p.name))


# --------------------------------------------------------------------------- finished elsewhere


def publish_files(
    path: PathLike, content: bytes | dict[str, bytes], sidecar: bytes | None = None
) -> Path:
    """Write an output that was encoded elsewhere (a farm worker) with the writer's rules.

    `content` is the whole file for MP4/WebM/GIF, or `{"000000.png": bytes, …}` for a
    frame folder; `sidecar` the sidecar's bytes as the worker's writer made them. As in
    `VideoWriter.close`, everything goes to temporary names in the destination folder first
    and is `os.replace`d into place, so a finished-looking file is always complete. Call
    `check_output` before (it refuses to replace files kandanim did not write).
    Raises RuntimeFailure for a full disk or a write error, ValueError for a bad frame name.
    """
    fmt = output_format(path)
    target = Path(path)
    frames = content if isinstance(content, dict) else None
    if (fmt == "png") != (frames is not None):
        raise ValueError(f"{target}: {fmt} output needs {'frames' if fmt == 'png' else 'bytes'}")
    for name in frames or {}:
        if not FRAME_FILE.match(name):
            raise ValueError(f"not a frame file name: {name!r}")
    ensure_writable_folder(target.parent)
    temps: list[Path] = []
    try:
        temp = reserve_name(target.parent, f".{target.name}.part", directory=frames is not None)
        temps.append(temp)
        if frames is None:
            temp.write_bytes(content)  # type: ignore[arg-type]  # bytes, checked above
        else:
            for name, data in frames.items():
                (temp / name).write_bytes(data)
        sidecar_target = sidecar_for(target, fmt)
        if sidecar is not None:
            sidecar_temp = reserve_name(target.parent, f".{sidecar_target.name}.part",
                                         directory=False)
            temps.append(sidecar_temp)
            sidecar_temp.write_bytes(sidecar)
        if frames is None:
            os.replace(temp, target)
        else:
            _publish_frame_folder(temp, target, len(frames))
        if sidecar is not None:
            os.replace(temps[-1], sidecar_target)
    except OSError as error:
        raise _write_failure(target, error) from error
    finally:
        for leftover in temps:
            if leftover.exists():
                _remove_quietly(leftover)
    return target
