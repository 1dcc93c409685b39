"""The preview's picture on real photographs and the built-in world (issue 8, SPEC §7).

Each property is measured on rendered frames with `kandanim.tools.picture_metrics`, at
small sizes (full-size figures are `python -m benchmarks quality`): detail kept after 4 s,
uprights kept straight, a photo's last frame explained by a homography of its first, the
subject kept in frame by an orbit, texture at entering borders, a full turn coming home,
no seam at the optical centre, sharpening that does not compound. The thresholds are the
issue's; each was checked to fail on the previous renderer (compounding bilinear warps,
heuristic depth), whose figures are in the comments.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from kandanim.camera import relative_move
from kandanim.coherence import unsharp
from kandanim.engines.preview import PreviewEngine
from kandanim.plan import Plan, build_plan
from kandanim.render import Renderer, reveal_notices
from kandanim.screenplay import from_mapping
from kandanim.spec import FOCUS_DISTANCE
from kandanim.tools import picture_metrics as pm

LANDSCAPE = (448, 256)  # about half of 832×448 (sides are multiples of 64)
PORTRAIT = (256, 448)
SECONDS = 4.0
FPS = 24

PHOTOS = {"coffee": data.coffee, "rocket": data.rocket, "astronaut": data.astronaut}


@functools.cache
def photo_path(name: str) -> str:
    folder = Path(__import__("tempfile").mkdtemp(prefix="kandanim-photos-"))
    path = folder / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(PHOTOS[name](), cv2.COLOR_RGB2BGR))
    return str(path)


def make_plan(effect: str, photo: str | None = None, size: tuple[int, int] = LANDSCAPE,
              **scene: object) -> Plan:
    fields: dict[str, object] = {"prompt": "p", "effect": effect, "duration": SECONDS, **scene}
    if photo is not None:
        fields["init_image"] = photo_path(photo)
    document = {
        "version": 1, "fps": FPS, "resolution": f"{size[0]}x{size[1]}", "seed": 3,
        "engine": "preview", "scenes": [fields],
    }
    return build_plan(from_mapping(document, base_dir=Path.cwd()), engine="preview")


@functools.cache
def frames_of(effect: str, photo: str | None = None, size: tuple[int, int] = LANDSCAPE,
              **scene: object) -> tuple[np.ndarray, ...]:
    plan = make_plan(effect, photo, size, **scene)
    engine = PreviewEngine()
    engine.prepare(plan)
    return tuple(image for _, image in Renderer(plan, engine).frames())


# ------------------------------------------------------------------------- detail kept


@pytest.mark.parametrize(
    ("effect", "photo"),
    [("right", "coffee"), ("turn-left", "coffee"), ("orbit-right", "coffee"),
     ("zoom-out", "coffee"), ("right", None), ("orbit-right", None), ("zoom-out", None)],
)
def test_pans_turns_orbits_and_pull_backs_keep_detail(effect: str, photo: str | None) -> None:
    """≥ 70 % of frame 0's detail after 4 s (before: 6–39 %). The world's turns are left
    out: turning shows other land, whose detail is its own (frames are drawn afresh)."""
    frames = frames_of(effect, photo)
    assert pm.detail_kept(frames[0], frames[-1]) >= 0.7


@pytest.mark.parametrize("photo", [None, "coffee", "rocket"])
def test_in_place_keeps_nine_tenths_of_the_detail(photo: str | None) -> None:
    """≥ 90 % at 832×448 (before: 23–44 %)."""
    frames = frames_of("in-place", photo, (832, 448))
    kept = pm.detail_kept(frames[0], frames[-1])
    assert 0.9 <= kept <= 1.5, kept


def test_no_frame_is_resampled_from_a_resampled_one() -> None:
    """A photo truck is one homography of the photo, frame after frame: the last frame
    equals a single warp of the first by the whole move (a compounding loop drifts)."""
    frames = frames_of("right", "coffee")
    fit = pm.fit_homography(frames[0], frames[-1])
    assert fit.correlation >= 0.9, fit


# ------------------------------------------------------------------- rigid and honest


@pytest.mark.parametrize("effect", ["right", "left", "orbit-right", "orbit-left"])
def test_a_rocket_stays_straight(effect: str) -> None:
    """The rocket's centre line within 2.3 px of straight at 256 px high (the issue's
    4 px at 448 high); the heuristic depth bent it by 10–34 px at full size."""
    frames = frames_of(effect, "rocket")
    width, height = LANDSCAPE
    rows = (round(0.27 * height), round(0.95 * height))
    track = pm.track_upright(frames[::2], 0.504 * width, rows=rows)
    assert track.found >= 6, track
    assert track.deviation <= 4.0 * LANDSCAPE[1] / 448, track


@pytest.mark.parametrize(
    ("photo", "size", "effect"),
    [("coffee", LANDSCAPE, "right"), ("coffee", LANDSCAPE, "orbit-right"),
     ("coffee", LANDSCAPE, "up"), ("coffee", (320, 320), "orbit-left"),
     ("astronaut", PORTRAIT, "orbit-left"), ("astronaut", PORTRAIT, "up")],
)
def test_a_photo_s_last_frame_is_a_homography_of_its_first(
    photo: str, size: tuple[int, int], effect: str
) -> None:
    """Correlation ≥ 0.5 over the common part (before: coffee orbit-right 0.17,
    astronaut orbit and up: no fit at all)."""
    frames = frames_of(effect, photo, size)
    correlation = pm.homography_correlation(frames[0], frames[-1])
    assert correlation >= 0.5, correlation


def test_an_orbit_keeps_a_portrait_s_face_in_frame() -> None:
    """The middle of the first frame (the face) is still in the middle after a 4 s
    orbit: the depth is scaled so it sits where orbits pivot."""
    frames = frames_of("orbit-left", "astronaut", PORTRAIT)
    first, last = pm.grey(frames[0]), pm.grey(frames[-1])
    height, width = first.shape
    face = first[height // 4 : height // 2, width // 4 : 3 * width // 4]
    response = cv2.matchTemplate(last, face, cv2.TM_CCOEFF_NORMED)
    _, score, _, (x, y) = cv2.minMaxLoc(response)
    assert score >= 0.5
    assert abs(x - width // 4) <= width // 10 and abs(y - height // 4) <= height // 10


def test_the_subject_in_the_middle_sits_at_the_focus_distance() -> None:
    plan = make_plan("orbit-right")
    engine = PreviewEngine()
    engine.prepare(plan)
    depth = engine.view_depth(plan.scenes[0], np.eye(3), np.zeros(3))
    assert depth is not None
    height, width = depth.shape
    centre = depth[height // 2 - 5 : height // 2 + 5, width // 2 - 5 : width // 2 + 5]
    assert np.median(centre) == pytest.approx(FOCUS_DISTANCE, rel=0.02)


def test_the_built_in_world_has_parallax() -> None:
    """Near ground moves ≥ 1.5× the far background in a truck (real depth, not a plane)."""
    frames = frames_of("right")
    first, later = (pm.grey(f) for f in (frames[0], frames[4]))  # a sixth of a second
    flow = cv2.calcOpticalFlowFarneback(first, later, None, 0.5, 3, 15, 5, 5, 1.1, 0)
    height = first.shape[0]
    near = float(np.median(flow[int(0.85 * height) :, :, 0]))
    far = float(np.median(flow[: int(0.2 * height), :, 0]))
    assert near < 0 and abs(near) >= 1.5 * abs(far), (near, far)


# ------------------------------------------------------------------------- borders


@pytest.mark.parametrize("photo", [None, "coffee"], ids=["world", "coffee"])
@pytest.mark.parametrize("effect", ["right", "left", "zoom-out"])
def test_entering_borders_keep_the_picture_s_texture(effect: str, photo: str | None) -> None:
    """Band ratio ≥ 0.5 of frame 0's at every edge (before: 0.14–0.4: smears)."""
    frames = frames_of(effect, photo)
    for edge in ("left", "right", "top", "bottom"):
        kept = pm.band_ratio_kept(frames[0], frames[-1], edge)
        assert kept >= 0.5, (edge, kept)


# ------------------------------------------------------------------------- full turn


def test_a_full_turn_shows_the_world_and_comes_home() -> None:
    frames = frames_of("rotate-360", None, (256, 128))
    middle = frames[len(frames) // 2]
    assert pm.centre_found(frames[0], middle) < 0.5  # half way round: another view
    assert pm.centre_found(frames[0], frames[-6:]) >= 0.5  # before: fog, 0.16


def test_a_full_turn_on_a_photo_comes_home_and_says_what_it_invents() -> None:
    plan = make_plan("rotate-360", "coffee", (256, 128))
    frames = frames_of("rotate-360", "coffee", (256, 128))
    assert pm.centre_found(frames[0], frames[-6:]) >= 0.5
    # the motion stays visible all the way round: consecutive frames differ
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(frames[40:57]))
    notices = reveal_notices(plan, PreviewEngine())
    assert len(notices) == 1 and "scene 1" in notices[0]
    assert reveal_notices(make_plan("rotate-360"), PreviewEngine()) == []  # the world has it
    assert reveal_notices(make_plan("turn-left", "coffee"), PreviewEngine()) == []


# --------------------------------------------------------------------- fixed patterns


@pytest.mark.parametrize("effect", ["zoom-in", "zoom-out"])
def test_no_seam_at_the_optical_centre(effect: str, tmp_path: Path) -> None:
    """Zooming a flat texture: row/column steps near the centre ≤ 2× the median (before:
    6–7×: a "+" that stood still while all else moved)."""
    frames = frames_of(effect, None, (256, 256), init_image=_gravel(), depth="flat")
    for frame in (frames[len(frames) // 2], frames[-1]):
        assert pm.centre_seam(frame) <= 2.0


@functools.cache
def _gravel() -> str:
    folder = Path(__import__("tempfile").mkdtemp(prefix="kandanim-gravel-"))
    path = folder / "gravel.png"
    cv2.imwrite(str(path), data.gravel())
    return str(path)


def test_sharpen_is_applied_to_the_output_only() -> None:
    """`sharpen: 0.5` on a 4 s in-place shot keeps detail within 2× of frame 0's (before:
    ×650, noise within a second), and frame 0 is the unsharpened frame 0, sharpened once."""
    plain = frames_of("in-place", "coffee")
    sharp = frames_of("in-place", "coffee", sharpen=0.5)
    assert np.array_equal(sharp[0], unsharp(plain[0], 0.5))
    assert np.array_equal(sharp[-1], unsharp(plain[-1], 0.5))
    assert 0.5 <= pm.detail_kept(sharp[0], sharp[-1]) <= 2.0


def test_the_world_is_drawn_from_the_pose_not_from_the_previous_frame() -> None:
    """Frame k of a render equals the world seen from frame k's pose, whatever came
    before: nothing accumulates."""
    plan = make_plan("dive-in", None, (128, 64))
    frames = frames_of("dive-in", None, (128, 64))
    engine = PreviewEngine()
    engine.prepare(plan)
    first = plan.frames[0].pose
    for index in (1, 50, len(frames) - 1):
        view = engine.view(plan.scenes[0], *relative_move(first, plan.frames[index].pose))
        assert view is not None and np.array_equal(view, frames[index])
