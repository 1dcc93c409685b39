"""What every importer produces: one Deforum-style animation, per frame, in plain numbers.

Importers (Deforum settings, Parseq) read their format into an `Animation`; `motion.py`
turns its per-frame deltas into camera poses and `screenplay.py` writes the screenplay.
Values keep Deforum's meaning (units per frame, its signs), except `strength`, which is
already kandanim's (the fraction of the frame that is re-noised).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MOTION_3D = ("translation_x", "translation_y", "translation_z",
             "rotation_3d_x", "rotation_3d_y", "rotation_3d_z")
MOTION_2D = ("translation_x", "translation_y", "zoom", "angle",
             "transform_center_x", "transform_center_y")


@dataclass
class Report:
    """What the import could not honour (warnings, grouped) and how it converted (notes)."""

    warnings: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def warn(self, group: str, item: str) -> None:
        items = self.warnings.setdefault(group, [])
        if item not in items:
            items.append(item)

    def note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    def warning_lines(self) -> list[str]:
        """One line per group: 'group: item; item'."""
        return [f"{group}: {'; '.join(items)}" for group, items in self.warnings.items()]


@dataclass(frozen=True)
class Prompt:
    frame: int  # first frame it applies to
    positive: str
    negative: str


@dataclass
class Animation:
    """A Deforum animation, frame by frame (arrays have shape (frames,))."""

    dialect: str  # e.g. "sd-webui-deforum settings", "Parseq export"
    mode: str  # "3D" or "2D"
    fps: int
    frames: int
    size: tuple[int, int] | None  # (W, H) in the source, None when it has none
    motion: dict[str, np.ndarray]  # MOTION_3D or MOTION_2D channels, Deforum units per frame
    fov: np.ndarray  # degrees (vertical)
    aspect: np.ndarray  # Deforum's aspect_ratio_schedule (1 = its default)
    strength: np.ndarray  # kandanim meaning: denoise fraction
    prompts: list[Prompt]
    cadence: int = 1
    seed: int | None = None  # None: random
    depth_warping: bool = True
    colour_coherence: bool = True
    sharpen: float | None = None
    init_image: str | None = None
    soundtrack: str | None = None
    report: Report = field(default_factory=Report)
