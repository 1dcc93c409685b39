"""The project's own error types. Only `cli.py` turns them into messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class KandanimError(Exception):
    """A failure the user can act on: printed without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UserError(KandanimError):
    """Invalid input or usage (screenplay, preset, options, files): exit code 2."""

    exit_code = 2


class RuntimeFailure(KandanimError):
    """The environment failed us (weights missing, out of memory, encoder, disk): exit 1."""

    exit_code = 1


class WeightsMissing(RuntimeFailure):
    """Model weights are neither cached locally nor reachable."""


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a file, compiler-style."""

    file: Path | str
    line: int  # 1-based
    col: int  # 1-based
    path: str  # dotted field path, e.g. "scenes.1.effect"; "" for the document itself
    message: str

    def __str__(self) -> str:
        where = f"{field_name(self.path)}: " if self.path else ""
        if self.line <= 0:  # data built in code has no position in a file
            return f"{self.file}: {where}{self.message}"
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


_KEYED_LISTS = {"camera": "key", "strength": "key", "keyframes": "key"}


def field_name(path: str) -> str:
    """A dotted field path as the user wrote and counts it: `scenes.1.init_image` →
    `scene 2: init_image`, `scenes.0.camera.2.t` → `scene 1: camera key 3: t`."""
    parts = path.split(".")
    words: list[str] = []
    for i, part in enumerate(parts):
        if not (part.isascii() and part.isdigit()):
            words.append(part)
            continue
        number = int(part) + 1
        owner = parts[i - 1] if i else ""
        if owner == "scenes" and words and words[-1] == "scenes":
            words[-1] = f"scene {number}"
        elif words:
            words[-1] = f"{words[-1]} {_KEYED_LISTS.get(owner, 'item')} {number}"
        else:
            words.append(f"item {number}")
    return ": ".join(words)


class ScreenplayError(UserError):
    """Every problem found in one or more screenplay/preset files, reported at once."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class Interrupted(KandanimError):
    """Ctrl-C or SIGTERM during a render: progress is saved, re-running resumes."""

    exit_code = 130
