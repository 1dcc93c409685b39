"""`kandanim plan --plot` of a 10-minute plan (SPEC §12): bar < 3 s to draw and write.

The screenplay: 150 scenes of 4 s at 24 fps (14,400 frames) cycling through ten effects,
every fourth scene at cadence 3, a strength schedule and 1 s dissolves. Timed separately:
building the plan (the planner, not the plot) and drawing + writing the PNG. Each is a
median of a few runs in one process (matplotlib already imported, as after its first use).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.common import Row, measure

EFFECTS = ("zoom-in", "orbit-right", "turn-left", "up", "dive-in", "look-around", "spin-cw",
           "zoom-out", "tilt-up", "right")
SCENES = 150
BAR_SECONDS = 3.0


def ten_minutes() -> dict:
    scenes = [
        {"prompt": f"scene {i}", "effect": EFFECTS[i % len(EFFECTS)],
         **({"cadence": 3} if i % 4 == 0 else {})}
        for i in range(SCENES)
    ]
    return {
        "version": 1, "title": "ten minutes", "fps": 24, "resolution": "landscape", "seed": 1,
        "defaults": {"duration": 4, "strength": [{"t": 0, "value": 0.3}, {"t": 4, "value": 0.12}]},
        "transition": {"type": "dissolve", "duration": 1.0}, "scenes": scenes,
    }


def run() -> list[Row]:
    from kandanim.pictures.plot import write_plot
    from kandanim.plan import build_plan
    from kandanim.screenplay import from_mapping

    def plan():
        return build_plan(from_mapping(ten_minutes(), base_dir=Path.cwd(), name="<bench>"))

    built = plan()
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "plan.png"
        plot_s = measure(lambda: write_plot(built, target), repeats=3, warmup=1)
    plan_s = measure(plan, repeats=3, warmup=0)
    return [
        Row("plan --plot, 10-minute plan: draw + write PNG", plot_s, "s", f"< {BAR_SECONDS:g}",
            plot_s < BAR_SECONDS, f"{built.frame_count} frames, {SCENES} scenes"),
        Row("plan of that 10-minute screenplay (before plotting)", plan_s, "s",
            note="the planner's share of `plan --plot`"),
    ]
