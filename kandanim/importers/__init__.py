"""Import other tools' animations as screenplays: Deforum settings and Parseq exports.

`import_file` recognises the format by content, reads it into an `Animation`
(`deforum.py`, `parseq.py`), and writes a screenplay (`writer.py`) that says in comments
what was converted and what could not be honoured. Nothing here prints: the warnings come
back in `Imported` for the CLI to show.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from kandanim.errors import UserError
from kandanim.importers.animation import Animation
from kandanim.importers.deforum import looks_like_settings, read_settings
from kandanim.importers.keyed import (
    looks_like_motion_csv,
    looks_like_prompts,
    read_motion_csv,
    read_prompts_file,
)
from kandanim.importers.parseq import looks_like_parseq, read_parseq
from kandanim.importers.writer import write_screenplay

MAX_FILE_BYTES = 64 * 1024 * 1024
MATCHES = ("screen", "geometry")


@dataclass(frozen=True)
class Imported:
    text: str  # the screenplay (YAML with comments)
    warnings: tuple[str, ...]  # one line per group of settings not honoured
    kind: str  # what the file was, e.g. "sd-webui-deforum settings (3D)"


def detect(path: Path) -> str | None:
    """'deforum', 'parseq', 'motion-csv' or 'prompts' when the file is one (read by
    content), else None."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        text = path.read_text(encoding="utf-8-sig")
        if looks_like_motion_csv(text):
            return "motion-csv"
        data = json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    if looks_like_parseq(data):
        return "parseq"
    if looks_like_settings(data):
        return "deforum"
    return "prompts" if looks_like_prompts(data) else None


def import_file(
    path: Path, *, match: str = "screen", relative_to: Path | None = None, mode: str | None = None
) -> Imported:
    """Read a Deforum settings file, Parseq export, motion CSV or prompts file and write a
    screenplay (`mode` picks 2D or 3D rows of a motion CSV that holds both).

    `relative_to` is the folder the screenplay will live in (paths to an init image or a
    soundtrack are written relative to it; default: the current folder). Raises UserError
    (exit 2) for an unreadable, unrecognised or hostile file, naming the field.
    """
    if match not in MATCHES:
        raise UserError(f"--match: expected screen or geometry, found '{match}'")
    if mode is not None and mode.upper() not in ("2D", "3D"):
        raise UserError(f"--mode: expected 2D or 3D, found '{mode}'")
    text = _read(path)
    source = str(path)
    if looks_like_motion_csv(text):
        animation = read_motion_csv(text, path, mode)
        return _finish(animation, path, match, relative_to)
    data = _json(text, path)
    if looks_like_parseq(data):
        animation = read_parseq(data, source)
    elif looks_like_settings(data):
        animation = read_settings(data, text, source)
    elif looks_like_prompts(data):
        animation = read_prompts_file(data, source)
    else:
        raise UserError(
            f"{path}: not a Deforum settings file or a Parseq export",
            hint="expected the *_settings.txt that Deforum saves beside its frames, or a Parseq "
                 "JSON export with rendered_frames",
        )
    return _finish(animation, path, match, relative_to)


def _finish(animation: Animation, path: Path, match: str, relative_to: Path | None) -> Imported:
    _relocate_files(animation, path.parent, relative_to or Path.cwd())
    screenplay = write_screenplay(animation, source=path.name, match=match)
    return Imported(screenplay, tuple(animation.report.warning_lines()),
                    f"{animation.dialect} ({animation.mode})")


def _read(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise UserError(f"{path}: the file is larger than {MAX_FILE_BYTES // 2**20} MB")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, expected a settings file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror}") from None


def _json(text: str, path: Path) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}",
                        hint="Deforum settings files and Parseq exports are JSON") from None
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply") from None


def _relocate_files(animation: Animation, source_dir: Path, target_dir: Path) -> None:
    """Init image and soundtrack paths: found beside the source, written relative to the
    screenplay's folder; a missing file is reported and left out."""
    for attribute, label in (("init_image", "init image"), ("soundtrack", "soundtrack")):
        value = getattr(animation, attribute)
        if not value:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else source_dir / path
        if not path.is_file():
            animation.report.warn("files", f"{label} {value} not found: set it by hand")
            setattr(animation, attribute, None)
            continue
        setattr(animation, attribute, os.path.relpath(path.resolve(), target_dir.resolve()))
        animation.report.note(f"{label}: {getattr(animation, attribute)}")


def save(imported: Imported, output: Path, *, source: Path, force: bool = False) -> Path:
    """Write the screenplay to `output` (via a temporary file, renamed when complete).

    Refuses (UserError) to replace the source, or an existing file without `force`.
    """
    if output.exists() and output.resolve() == source.resolve():
        raise UserError(f"{output}: is the file being imported; choose another -o")
    if output.is_dir():
        raise UserError(f"{output}: is a folder; -o names the screenplay file to write")
    if output.exists() and not force:
        raise UserError(f"{output}: already exists", hint="add --force to replace it")
    if not output.parent.is_dir():
        raise UserError(f"{output.parent}: no such folder")
    partial = output.with_name(f".{output.name}.partial")
    try:
        partial.write_text(imported.text, encoding="utf-8")
        partial.replace(output)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UserError(f"{output}: cannot write: {error.strerror}") from None
    return output
