"""Where an output goes and whether kandanim may write there (SPEC §8); no codecs here.

The output path picks the format (`output_format`); the sidecar sits beside it
(`sidecar_path`). `check_output` decides, before anything expensive runs, whether the
path may be written: kandanim replaces only what it wrote itself and never writes onto an
input of the same render. `kandanim.encode` writes; this module only looks, so the
screenplay loader can check an `output:` without importing PyAV.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from kandanim.errors import KandanimError, RuntimeFailure, UserError

OutputFormat = Literal["mp4", "webm", "gif", "png"]
PathLike = str | os.PathLike[str]

FILE_FORMATS: dict[str, OutputFormat] = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}
FRAME_NAME = "{index:06d}.png"
FRAME_FILE = re.compile(r"^(\d{6})\.png$")
SIDECAR_KEY = "video"  # the writer's own entry in the sidecar, also how we recognise ours


def output_format(path: PathLike) -> OutputFormat:
    """The format an output path asks for: by extension, or `png` for a folder.

    A folder is a path that ends in `/` or names an existing folder. Pass the user's text
    (a `str`) where it may end in `/`: `pathlib.Path` drops the trailing slash.
    """
    text = os.fspath(path)
    target = Path(text)
    if text.endswith(("/", os.sep)) or target.is_dir():
        return "png"
    suffix = target.suffix.lower()
    if suffix in FILE_FORMATS:
        return FILE_FORMATS[suffix]
    supported = ", ".join(FILE_FORMATS)
    what = f"extension {target.suffix!r}" if target.suffix else "no extension"
    raise UserError(
        f"cannot write {text!r}: {what}; supported outputs are {supported} files, "
        "or a folder (a path ending in '/') for PNG frames",
        hint=f"for example -o {target.with_suffix('.mp4')}",
    )


def sidecar_path(path: PathLike) -> Path:
    """Where the sidecar of an output goes: `out/demo.mp4` → `out/demo.json`."""
    return sidecar_for(Path(path), output_format(path))


def sidecar_for(target: Path, fmt: OutputFormat) -> Path:
    if fmt == "png":
        return target.with_name(target.name + ".json")
    return target.with_suffix(".json")


def check_output(
    path: PathLike,
    *,
    force: bool,
    sidecar: bool = True,
    inputs: Sequence[tuple[str, PathLike]] = (),
) -> None:
    """Check before rendering that `path` can be written, creating its parent folder.

    kandanim replaces only what it wrote itself (SPEC §8): an existing output is ours when
    our sidecar beside it describes it (same name, format and, for files, size), so users
    re-run renders without ceremony. Anything else in the way is refused unless `force`:
    a file kandanim did not write, a frame folder without our sidecar or holding other
    files, a JSON file in the sidecar's place that we did not write. An empty file is
    nothing to protect.

    `inputs` are (role, path) pairs of the render's own inputs (screenplay, init image,
    soundtrack): writing onto one of them (or its sidecar onto one) is refused even with
    `force`, since the render would destroy what it reads.
    """
    fmt = output_format(path)
    target = Path(path)
    _refuse_inputs(target, fmt, inputs, sidecar=sidecar)
    if fmt == "png":
        _check_frame_folder(target, force=force)
    elif target.exists() and not force and not _is_our_output(target, fmt):
        kind = "a file" if target.is_file() else "something"
        raise UserError(
            f"{target} exists and kandanim did not write it; refusing to replace {kind} "
            "that may be yours",
            hint="choose another output with -o, or pass --force to replace it",
        )
    if sidecar:
        _check_sidecar_slot(sidecar_path(path), force=force)
    ensure_writable_folder(target.parent)


def _refuse_inputs(
    target: Path, fmt: OutputFormat, inputs: Sequence[tuple[str, PathLike]], *, sidecar: bool
) -> None:
    """Never write onto an input of the same render, whatever `--force` says."""
    written = [("the output", target)]
    if sidecar:
        written.append(("the sidecar", sidecar_for(target, fmt)))
    for role, source in inputs:
        source = Path(source)
        for what, place in written:
            inside = fmt == "png" and what == "the output" and _is_frame_in(source, place)
            if _same_file(source, place) or inside:
                raise UserError(
                    f"{what} {place} would overwrite {source}, the {role} of this render; "
                    "kandanim never writes onto its own input, even with --force",
                    hint="choose another output with -o (or `output:` in the screenplay)",
                )


def _same_file(a: Path, b: Path) -> bool:
    """Same file by inode where both exist (hard links, case-insensitive disks), else by path."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.abspath(a) == os.path.abspath(b)


def _is_frame_in(source: Path, folder: Path) -> bool:
    """An input named like a frame inside a frame folder would be replaced or pruned."""
    return FRAME_FILE.match(source.name) is not None and _same_file(source.parent, folder)


def _check_frame_folder(folder: Path, *, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(
            f"{folder} is a file, not a folder for PNG frames",
            hint="name a folder (ending in '/') or a .mp4/.webm/.gif file with -o",
        )
    if force or not folder.is_dir():
        return
    names = sorted(p.name for p in folder.iterdir())
    others = [name for name in names if not FRAME_FILE.match(name)]
    if others:
        listed = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise UserError(
            f"{folder} already holds files other than frames ({listed}); "
            "refusing to write frames into it",
            hint="choose an empty or new folder with -o, or pass --force",
        )
    if names and not _is_our_output(folder, "png"):
        raise UserError(
            f"{folder} already holds frames that kandanim did not write (no sidecar "
            f"{sidecar_for(folder, 'png').name} of ours describes them); refusing to replace them",
            hint="choose an empty or new folder with -o, or pass --force",
        )


def _check_sidecar_slot(sidecar: Path, *, force: bool) -> None:
    if not force and sidecar.exists() and not _is_our_sidecar(sidecar):
        raise UserError(
            f"the sidecar {sidecar} would replace a file that kandanim did not write",
            hint="move that file, choose another output name with -o, or pass --force",
        )


def _is_our_output(path: Path, fmt: OutputFormat) -> bool:
    """Whether kandanim wrote `path`: our sidecar beside it names it, with its format and,
    for files, its size (a user's video later saved under the name is not ours)."""
    if path.is_file() and path.stat().st_size == 0:
        return True  # an empty file is nothing to protect
    entry = _sidecar_entry(sidecar_for(path, fmt))
    if entry is None or entry.get("file") != path.name or entry.get("format") != fmt:
        return False
    if fmt == "png":
        return path.is_dir()
    size = entry.get("bytes")
    return path.is_file() and (size is None or size == path.stat().st_size)


def _sidecar_entry(path: Path) -> dict[str, Any] | None:
    """The writer's `video` entry of a sidecar we wrote, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    entry = data.get(SIDECAR_KEY) if isinstance(data, dict) else None
    if isinstance(entry, dict) and str(entry.get("writer", "")).startswith("kandanim"):
        return entry
    return None


def _is_our_sidecar(path: Path) -> bool:
    return _sidecar_entry(path) is not None


def ensure_writable_folder(folder: Path) -> None:
    """Create `folder` if missing and prove we can create files in it."""
    where = folder if str(folder) else Path(".")
    try:
        where.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(
            f"cannot create the output folder {where}: a file of that name is in the way",
            hint="choose another output path with -o",
        ) from None
    except OSError as error:
        raise _folder_error(where, error) from None
    try:
        probe = reserve_name(where, ".kandanim-write-test", directory=False)
    except OSError as error:
        raise _folder_error(where, error) from None
    probe.unlink(missing_ok=True)


def _folder_error(folder: Path, error: OSError) -> KandanimError:
    reason = error.strerror or str(error)
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
        return UserError(
            f"cannot write to the output folder {folder}: {reason}",
            hint="choose another output path with -o",
        )
    return RuntimeFailure(f"cannot write to the output folder {folder}: {reason}")


def reserve_name(folder: Path, prefix: str, *, directory: bool) -> Path:
    """Create a new empty file (or folder) `folder/prefix-XXXXXXXX` with default permissions.

    Not `tempfile.mkstemp`: its 0600 mode would stick to the published video.
    """
    for _ in range(100):
        candidate = folder / f"{prefix}-{secrets.token_hex(4)}"
        try:
            if directory:
                candidate.mkdir(mode=0o777)
            else:
                os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))


