"""`kandanim import` (SPEC §11): the 1 MB per-frame Deforum export imports in ≤ 2 s, and
hostile schedules are refused in ≤ 1 s each.

The dense file is the real one from ../shared/deforum-settings/ when it is there (or
KANDANIM_DEFORUM_SETTINGS), else a synthetic file of the same shape (6001 keys in each of
six motion fields, 150 frames used). Median of a few runs: these machines vary up to 3×.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, measure

DENSE_NAME = "webpilot-dense-per-frame-keys.txt"
IMPORT_BAR_S = 2.0
HOSTILE_BAR_S = 1.0
HOSTILE = (
    "0: (9**9**9)", "0: ('a' * 10**9)", "0: (__import__('os').system('true'))",
    "0: (" + "(" * 300 + "t" + ")" * 300 + ")", "0: (" + "t*" * 2000 + "1)",
    "0: (" + "+".join(["sin(t)"] * 300) + ")", "0: (" + "+".join(["sin(t)"] * 100) + ")",
    "0: ((1).__class__.__bases__)", "0: (" + ", ".join(["1"] * 50000) + ")",
)


def dense_file(folder: Path) -> tuple[Path, str]:
    shared = Path(os.environ.get("KANDANIM_DEFORUM_SETTINGS")
                  or Path(__file__).resolve().parents[2] / "shared" / "deforum-settings")
    if (shared / DENSE_NAME).is_file():
        return shared / DENSE_NAME, "the real 1 MB export"
    fields = {
        name: ",".join(f"{n}:({math.sin(n / 40 + k) * 0.3:.16g})" for n in range(6001))
        for k, name in enumerate(("translation_x", "translation_y", "translation_z",
                                  "rotation_3d_x", "rotation_3d_y", "rotation_3d_z"))
    }
    data = {"animation_mode": "3D", "max_frames": 150, "fps": 25, "W": 1216, "H": 832,
            "diffusion_cadence": 4, "prompts": {"0": "a jungle"}, **fields}
    path = folder / "dense_settings.txt"
    path.write_text(json.dumps(data, indent=4))
    return path, "synthetic, same shape (real file absent)"


def run() -> list[Row]:
    from kandanim.errors import UserError
    from kandanim.importers import import_file

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="kandanim-bench-import-") as tmp:
        path, origin = dense_file(Path(tmp))
        seconds = measure(lambda: import_file(path), repeats=3, warmup=1)
        size = path.stat().st_size / 2**20
        rows.append(Row("import dense per-frame Deforum export", round(seconds, 3), "s",
                        f"≤ {IMPORT_BAR_S:g}", seconds <= IMPORT_BAR_S, f"{size:.1f} MB, {origin}"))
        worst = 0.0
        for schedule in HOSTILE:
            hostile = Path(tmp) / "hostile.txt"
            hostile.write_text(json.dumps({"animation_mode": "3D", "max_frames": 20000,
                                           "rotation_3d_x": schedule}))
            started = time.perf_counter()
            try:
                import_file(hostile)
            except UserError:
                pass
            else:
                raise AssertionError(f"not refused: {schedule[:40]}")
            worst = max(worst, time.perf_counter() - started)
        rows.append(Row("refuse a hostile schedule (worst of the probes)", round(worst, 3), "s",
                        f"≤ {HOSTILE_BAR_S:g}", worst <= HOSTILE_BAR_S,
                        f"{len(HOSTILE)} probes, max_frames 20000"))
    return rows
