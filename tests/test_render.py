"""The render loop: streams, cadence, transitions, determinism and resumable state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kandanim.engines.preview import PreviewEngine
from kandanim.plan import Plan, build_plan
from kandanim.render import Renderer, stream_spans
from kandanim.resume import _load_state, _state_arrays
from kandanim.screenplay import from_mapping


def make_plan(tmp_path: Path, scenes: list[dict[str, Any]], **top: Any) -> Plan:
    document = {
        "version": 1, "fps": 12, "resolution": "64x64", "seed": 7, "engine": "preview",
        "scenes": scenes, **top,
    }
    return build_plan(from_mapping(document, base_dir=tmp_path), engine="preview")


class SpyEngine(PreviewEngine):
    """The preview engine driven through the repainting loop (as the kandinsky engine
    is: warp the previous frame, repair), recording what the loop asks of it."""

    supports_morph = True
    anchored = False

    def __init__(self) -> None:
        super().__init__()
        self.repaired: list[int] = []
        self.sources: list[tuple[int, bool]] = []
        self.conditioning: dict[int, list[tuple[int, float]]] = {}

    def first_frame(self, scene, frame, source):
        self.sources.append((scene.index, source is not None))
        return super().first_frame(scene, frame, source)

    def repair(self, warped, holes, frame, scene, conditioning):
        self.repaired.append(frame.index)
        self.conditioning.setdefault(frame.index, []).extend(conditioning)
        return super().repair(warped, holes, frame, scene, conditioning)


def render_all(plan: Plan, engine=None) -> list[np.ndarray]:
    engine = engine or PreviewEngine()
    engine.prepare(plan)
    return [image for _, image in Renderer(plan, engine).frames()]


def test_every_planned_frame_is_rendered_in_order(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path,
        [{"prompt": "a", "effect": "zoom-in", "duration": 1},
         {"prompt": "b", "effect": "right", "duration": 1.5}],
        transition={"type": "dissolve", "duration": 0.5},
    )
    engine = PreviewEngine()
    engine.prepare(plan)
    indices = [i for i, image in Renderer(plan, engine).frames()]
    assert indices == list(range(plan.frame_count)) == list(range(30))


def test_cadence_diffuses_exactly_the_frames_the_plan_marks(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, [{"prompt": "a", "effect": "zoom-in", "duration": 2, "cadence": 3}])
    engine = SpyEngine()
    frames = render_all(plan, engine)
    marked = [f.index for f in plan.frames if f.diffuse and f.index > 0]
    assert engine.repaired == marked
    assert marked == [3, 6, 9, 12, 15, 18, 21, 23]
    # frames between diffused ones are real, moving images, not copies
    assert not np.array_equal(frames[1], frames[0])
    assert not np.array_equal(frames[1], frames[3])


def test_dissolve_runs_two_streams_and_starts_b_from_a(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path,
        [{"prompt": "a", "effect": "zoom-in", "duration": 1},
         {"prompt": "b", "effect": "zoom-out", "duration": 1}],
        transition={"type": "dissolve", "duration": 0.5},
    )
    spans = stream_spans(plan, morph=False)
    window = [f.index for f in plan.frames if f.blend_to == 1]
    assert len(spans) == 2 and window
    assert spans[0].last == window[-1] and spans[1].first == window[0]
    engine = SpyEngine()
    frames = render_all(plan, engine)
    assert engine.sources == [(0, False), (1, True)]
    # inside the window the output is a mix of the two streams: differs from both ends
    middle = window[len(window) // 2]
    assert not np.array_equal(frames[middle], frames[window[0] - 1])


def test_morph_is_one_stream_with_interpolated_conditioning(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path,
        [{"prompt": "a", "effect": "zoom-in", "duration": 1},
         {"prompt": "b", "effect": "zoom-in", "duration": 1}],
        transition={"type": "morph", "duration": 0.5},
    )
    assert [s.scenes for s in stream_spans(plan, morph=True)] == [(0, 1)]
    engine = SpyEngine()
    render_all(plan, engine)
    assert engine.sources == [(0, False)]
    window = [f for f in plan.frames if f.blend_to == 1]
    for frame in window:
        weights = dict(engine.conditioning[frame.index])
        assert weights[0] == pytest.approx(1 - frame.transition)
        assert weights[1] == pytest.approx(frame.transition)
    after = window[-1].index + 1
    assert engine.conditioning[after] == [(1, 1.0)]


def test_cut_starts_the_next_scene_fresh(tmp_path: Path) -> None:
    plan = make_plan(
        tmp_path,
        [{"prompt": "a", "effect": "zoom-in", "duration": 1},
         {"prompt": "b", "effect": "zoom-in", "duration": 1}],
        transition={"type": "cut"},
    )
    engine = SpyEngine()
    frames = render_all(plan, engine)
    assert engine.sources == [(0, False), (1, False)]
    assert len(frames) == 24


def test_same_plan_gives_identical_frames(tmp_path: Path) -> None:
    plan = make_plan(tmp_path, [{"prompt": "a", "effect": "orbit-right", "duration": 1}])
    first, second = render_all(plan), render_all(plan)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def photo(tmp_path: Path) -> str:
    """A small real photograph (scikit-image's coffee) as an init image."""
    import cv2
    from skimage import data

    path = tmp_path / "coffee.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR))
    return str(path)


RESUMABLE_KINDS = {
    # kind: (engine class, extra scene fields); photo paths are filled in by the test
    "world": (PreviewEngine, {}),  # the built-in world, drawn from each pose
    "ground": (PreviewEngine, {"init_image": "PHOTO"}),  # planar anchor (homography)
    "heuristic": (PreviewEngine, {"init_image": "PHOTO", "depth": "heuristic"}),  # anchors
    "repainting": (SpyEngine, {}),  # the loop that warps the previous frame
}


@pytest.mark.parametrize("kind", list(RESUMABLE_KINDS))
@pytest.mark.parametrize("cadence", [1, 2])
def test_resuming_from_a_saved_state_matches_an_uninterrupted_render(
    tmp_path: Path, cadence: int, kind: str
) -> None:
    engine_class, extra = RESUMABLE_KINDS[kind]
    if extra.get("init_image") == "PHOTO":
        extra = {**extra, "init_image": photo(tmp_path)}
    plan = make_plan(
        tmp_path,
        [{"prompt": "a", "effect": "zoom-in", "duration": 1, "cadence": cadence, **extra},
         {"prompt": "b", "effect": "turn-right", "duration": 1, "cadence": cadence, **extra}],
        transition={"type": "dissolve", "duration": 0.5},
    )
    expected = render_all(plan, engine_class())
    for stop in (5, 11, 14):
        engine = engine_class()
        engine.prepare(plan)
        renderer = Renderer(plan, engine)
        frames = renderer.frames()
        checkpoint = None
        for index, _ in frames:
            if renderer.state.clean:
                checkpoint = (tmp_path / f"state-{stop}.npz")
                np.savez(checkpoint, **_state_arrays(renderer.state))
            if index == stop:
                break
        assert checkpoint is not None
        state = _load_state(checkpoint)
        engine = engine_class()
        engine.prepare(plan)
        rest = [image for _, image in Renderer(plan, engine, state).frames()]
        tail = expected[state.next_index :]
        assert len(rest) == len(tail)
        assert all(np.array_equal(a, b) for a, b in zip(rest, tail, strict=True))
