"""Screenplay → baked plan: frame counts, settings, transitions, seeds, models, golden files."""

from __future__ import annotations

import itertools
import json
import os
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from kandanim import spec
from kandanim.cli import app
from kandanim.errors import UserError
from kandanim.plan import Plan, build_plan, frame_count, resolve_models
from kandanim.presets import load_catalogue
from kandanim.screenplay import LoadedScreenplay, load_screenplay

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
CATALOGUE = load_catalogue()
FPS_VALUES = [1, 12, 24, 25, 30, 60, 120]


def loaded(data: dict[str, Any]) -> LoadedScreenplay:
    """A validated screenplay built directly (no file): effects resolved like the loader."""
    play = spec.Screenplay.model_validate({"version": 1, **data})
    effects = []
    for scene in play.scenes:
        name = scene.effect or (None if scene.camera else spec.DEFAULT_EFFECT)
        effects.append(CATALOGUE.get(name) if name else None)
    return LoadedScreenplay(
        path=Path("test.yaml"), base_dir=Path.cwd(), text="", digest="",
        screenplay=play, effects=tuple(effects),
    )


def scenes(*effects: str, **fields: Any) -> list[dict[str, Any]]:
    return [{"prompt": f"scene {i}", "effect": e, **fields} for i, e in enumerate(effects)]


# --------------------------------------------------------------------------- frames


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.decimals("0.1", "6", places=3), min_size=1, max_size=4),
    st.sampled_from(FPS_VALUES),
)
def test_frame_counts_are_exact(durations: list[Decimal], fps: int) -> None:
    expected = [int((d * fps).quantize(Decimal(1), rounding=ROUND_HALF_UP)) for d in durations]
    data = {"fps": fps, "seed": 1, "scenes": [
        {"prompt": "p", "effect": "zoom-in", "duration": float(d)} for d in durations
    ]}
    if min(expected) == 0:
        with pytest.raises(UserError, match="less than one frame"):
            build_plan(loaded(data))
        return
    plan = build_plan(loaded(data))
    assert plan.frame_count == sum(expected)
    assert [s.stop - s.start for s in plan.scenes] == expected
    assert [s.start for s in plan.scenes] == [sum(expected[:i]) for i in range(len(expected))]
    for frame in plan.frames:
        scene = plan.scenes[frame.scene]
        assert scene.start <= frame.index < scene.stop
        assert frame.t == pytest.approx(frame.index / fps)
        assert frame.local_t == pytest.approx((frame.index - scene.start) / fps)
    assert [f.index for f in plan.frames] == list(range(plan.frame_count))


def test_frame_count_rounds_halves_up() -> None:
    assert frame_count(2.5, 1) == 3 and frame_count(0.1, 30) == 3 and frame_count(2.55, 30) == 77
    assert frame_count(4.0, 24) == 96 and frame_count(0.01, 24) == 0


def test_fps_and_engine_overrides() -> None:
    plan = build_plan(loaded({"fps": 24, "scenes": scenes("zoom-in")}), fps=12, engine="preview")
    assert (plan.fps, plan.frame_count, plan.engine) == (12, 48, "preview")
    with pytest.raises(UserError, match="fps"):
        build_plan(loaded({"scenes": scenes("zoom-in")}), fps=0)
    with pytest.raises(UserError, match="unknown engine 'sdxl'"):
        build_plan(loaded({"scenes": scenes("zoom-in")}), engine="sdxl")


# --------------------------------------------------------------------------- settings


def test_settings_resolve_scene_then_defaults_then_preset_then_builtin() -> None:
    data = {
        "defaults": {"strength": 0.2, "cadence": 2},
        "scenes": [
            {"prompt": "a", "effect": "in-place"},  # preset strength 0.25 < defaults
            {"prompt": "b", "effect": "in-place", "strength": 0.3, "fov": 50},
        ],
    }
    plan = build_plan(loaded(data), seed=1)
    first, second = plan.frames[0], plan.frames[plan.scenes[1].start]
    assert (first.strength, second.strength) == (0.2, 0.3)
    assert (first.fov, second.fov) == (40.0, 50.0)
    assert plan.scenes[0].cadence == 2 and plan.scenes[0].steps == 50
    no_defaults = build_plan(loaded({"scenes": scenes("in-place", "zoom-in")}), seed=1)
    assert no_defaults.frames[0].strength == 0.25  # the preset's own setting
    assert no_defaults.frames[-1].strength == 0.15


def test_strength_schedule_is_evaluated_per_frame() -> None:
    schedule = [{"t": 0, "value": 0.1}, {"t": 1, "value": 0.5}]
    plan = build_plan(loaded({"fps": 10, "scenes": scenes("zoom-in", strength=schedule)}), seed=1)
    strengths = [f.strength for f in plan.frames]
    assert strengths[0] == pytest.approx(0.1) and strengths[5] == pytest.approx(0.3)
    assert strengths[10:] == pytest.approx([0.5] * 30)


def test_depth_is_auto_for_preview_unless_set() -> None:
    data = {"scenes": scenes("zoom-in", "zoom-in")}
    assert build_plan(loaded(data), engine="preview").scenes[0].depth == "auto"
    assert build_plan(loaded(data), engine="kandinsky").scenes[0].depth == "midas"
    data["scenes"][1]["depth"] = "flat"
    assert build_plan(loaded(data), engine="preview").scenes[1].depth == "flat"
    data["defaults"] = {"depth": "depth-anything"}
    assert build_plan(loaded(data), engine="preview").scenes[0].depth == "depth-anything"


def test_cadence_diffuses_every_nth_and_the_last_frame() -> None:
    plan = build_plan(loaded({"fps": 10, "scenes": scenes("zoom-in", cadence=3, duration=1)}))
    assert [f.diffuse for f in plan.frames] == [i % 3 == 0 or i == 9 for i in range(10)]


# --------------------------------------------------------------------------- transitions


def blends(plan: Plan) -> list[tuple[int, int | None, int | None, float]]:
    return [(f.index, f.blend_from, f.blend_to, f.transition) for f in plan.frames if f.blend_to]


def test_dissolve_window_is_centred_on_the_cut() -> None:
    data = {"fps": 10, "scenes": scenes("zoom-in", "turn-left", duration=2)}
    plan = build_plan(loaded(data))  # built-in: dissolve 1 s
    window = blends(plan)
    assert [i for i, *_ in window] == list(range(15, 25))
    assert all((a, b) == (0, 1) for _, a, b, _ in window)
    weights = [w for *_, w in window]
    assert all(b > a for a, b in itertools.pairwise(weights))
    assert weights[0] < 0.05 and weights[-1] > 0.95
    assert weights[4] + weights[5] == pytest.approx(1.0)  # symmetric about the cut
    assert plan.scenes[1].transition_in == "dissolve" and plan.scenes[1].transition_frames == 10
    assert plan.scenes[0].transition_in == "cut" and plan.scenes[0].transition_frames == 0


def test_transition_precedence_and_cut() -> None:
    data = {
        "fps": 10,
        "transition": {"type": "morph", "duration": 0.4},
        "scenes": [
            {"prompt": "a", "duration": 2},
            {"prompt": "b", "duration": 2},
            {"prompt": "c", "duration": 2, "transition": {"type": "cut"}},
            {"prompt": "d", "duration": 2, "transition": {"type": "dissolve", "duration": 0.6}},
        ],
    }
    plan = build_plan(loaded(data))
    assert [s.transition_in for s in plan.scenes] == ["cut", "morph", "cut", "dissolve"]
    assert [s.transition_frames for s in plan.scenes] == [0, 4, 0, 6]
    assert [i for i, *_ in blends(plan)] == [18, 19, 20, 21, 57, 58, 59, 60, 61, 62]


def test_windows_shrink_to_fit_short_scenes_without_overlapping() -> None:
    data = {
        "fps": 10,
        "transition": {"type": "dissolve", "duration": 3},
        "scenes": [{"prompt": p, "duration": d} for p, d in (("a", 2), ("b", 0.6), ("c", 2))],
    }
    plan = build_plan(loaded(data))
    window = blends(plan)
    indices = [i for i, *_ in window]
    assert len(indices) == len(set(indices))  # no frame in two windows
    # scene b (frames 20..25) gives half its frames to each side, windows stay centred
    assert [i for i, a, *_ in window if a == 0] == [17, 18, 19, 20, 21, 22]
    assert [i for i, a, *_ in window if a == 1] == [23, 24, 25, 26, 27, 28]


# --------------------------------------------------------------------------- seeds, models


def test_seed_precedence_and_scene_seeds() -> None:
    data = {"seed": 42, "scenes": scenes("zoom-in", "zoom-in", "zoom-in")}
    data["scenes"][2]["seed"] = 5
    plan = build_plan(loaded(data))
    assert plan.seed == 42 and [s.seed for s in plan.scenes] == [42, 1042, 5]
    assert build_plan(loaded(data), seed=7).scenes[1].seed == 1007
    del data["seed"]
    random_seeds = {build_plan(loaded(data)).seed for _ in range(3)}
    assert len(random_seeds) > 1 and all(0 <= s < 2**32 for s in random_seeds)
    wrapped = build_plan(loaded({"scenes": scenes("zoom-in", "zoom-in")}), seed=2**32 - 1)
    assert wrapped.scenes[1].seed == 999


def test_models_from_screenplay_then_environment_then_defaults() -> None:
    env = {"KANDANIM_DECODER": "/models/decoder", "KANDANIM_PRIOR": "env/prior"}
    models = resolve_models(spec.Models(prior="my/prior"), env)
    assert models == {
        "prior": "my/prior", "decoder": "/models/decoder", "inpaint": spec.DEFAULT_INPAINT,
    }
    plan = build_plan(loaded({"scenes": scenes("zoom-in")}))
    assert plan.depth_model("midas") == spec.DEFAULT_DEPTH_MODELS["midas"]
    assert plan.depth_model("heuristic") is None
    with_depth = resolve_models(spec.Models(), {"KANDANIM_DEPTH": "/d"})
    assert with_depth["depth"] == "/d"


# --------------------------------------------------------------------------- JSON


def test_json_records_follow_the_spec() -> None:
    plan = build_plan(loaded({"fps": 12, "resolution": "landscape", "scenes": scenes("zoom-in")}))
    document = json.loads(json.dumps(plan.to_json()))
    assert (document["fps"], document["width"], document["height"], document["frames"]) == (
        12, 832, 448, 48,
    )
    record = document["records"][12]
    assert set(RECORD_KEYS) <= set(record)
    assert set(record["pose"]) == {"x", "y", "z", "yaw", "pitch", "roll"}
    assert record["pose"]["z"] == pytest.approx(0.15) and record["t"] == 1.0


def test_plan_command_prints_table_and_json(tmp_path: Path) -> None:
    script = tmp_path / "two.yaml"
    script.write_text(
        "version: 1\nseed: 3\nfps: 12\nscenes:\n"
        "  - {prompt: a hill, effect: zoomin, duration: 1}\n"
        "  - {prompt: a tower, effect: around_right, duration: 2}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    table = runner.invoke(app, ["plan", str(script)], env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    assert "00:00:01:00" in table.output and "orbit-right" in table.output
    assert "dissolve 1s" in table.output
    as_json = runner.invoke(app, ["plan", "--json", str(script)])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["frames"] == 36


# --------------------------------------------------------------------------- golden files

GOLDEN_SCRIPTS = sorted((ROOT / "scenes").glob("*.yaml")) + sorted(
    (GOLDEN / "screenplays").glob("*.yaml")
)
RECORD_KEYS = (
    "index", "scene", "t", "pose", "fov", "near", "far", "strength", "diffuse", "transition",
    "blend_from", "blend_to",
)
TOLERANCE = 1e-5


def pose_table(plan: Plan) -> dict[str, Any]:
    document = plan.to_json()
    return {
        **{k: document[k] for k in ("fps", "width", "height", "frames")},
        "records": [{k: r[k] for k in RECORD_KEYS} for r in document["records"]],
    }


def dump_table(table: dict[str, Any]) -> str:
    """One record per line, so a changed frame shows as a one-line diff."""
    head = {k: v for k, v in table.items() if k != "records"}
    lines = [json.dumps(r, ensure_ascii=False) for r in table["records"]]
    body = ",\n  ".join(lines)
    return json.dumps(head)[:-1] + ',\n "records": [\n  ' + body + "\n ]\n}\n"


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, golden has {len(want)}"]
        pairs = enumerate(zip(got, want))
        return [d for i, (g, w) in pairs for d in differences(g, w, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(want, numbers) and isinstance(got, numbers) and not isinstance(want, bool):
        return [] if abs(got - want) <= TOLERANCE else [f"{where}: {got} != golden {want}"]
    return [] if got == want else [f"{where}: {got!r} != golden {want!r}"]


def test_golden_fixtures_exist() -> None:
    assert GOLDEN_SCRIPTS, "no screenplays to snapshot"


@pytest.mark.parametrize("script", GOLDEN_SCRIPTS, ids=lambda p: p.stem)
def test_plan_matches_golden_file(script: Path) -> None:
    table = pose_table(build_plan(load_screenplay(script), seed=0))
    golden = GOLDEN / f"{script.stem}.json"
    if os.environ.get("KANDANIM_UPDATE_GOLDEN"):
        golden.write_text(dump_table(table), encoding="utf-8")
    assert golden.exists(), (
        f"no golden file for {script.name}; after checking its plan, create it with "
        "KANDANIM_UPDATE_GOLDEN=1 pytest tests/test_plan.py"
    )
    found = differences(table, json.loads(golden.read_text(encoding="utf-8")))
    assert not found, (
        f"{script.name}: the plan changed ({len(found)} values), first: {found[:5]}; if intended, "
        "regenerate with KANDANIM_UPDATE_GOLDEN=1 pytest tests/test_plan.py"
    )
