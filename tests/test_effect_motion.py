"""Every effect moves the picture the way its name says (SPEC §4), on every aspect.

Each effect is rendered as a short `preview` of the built-in world (the real planner and
the preview engine drawing each frame from the procedural scene's layers) on landscape,
square and portrait frames. Between consecutive frames we measure dense optical flow (OpenCV
Farnebäck) and fit a small motion model to it, then check the signs of SPEC §4's user
convention. Image coordinates throughout: x right, **y down**, origin at the principal
point; flow is the displacement of content from frame i to frame i + 1.

What is fitted per frame pair, weighting each pixel by how trustworthy its flow is
(texture strength × forward–backward consistency, away from the border the fill invents),
on grey frames with local contrast equalised so the faint sky tracks as well as the ground:

* an affine field  u = tx + a·x + b·y,  v = ty + c·x + d·y  →  translation (tx, ty),
  divergence a + d (> 0: the picture expands, a zoom in) and curl c − b (the rotation);
* a parallax line  u = α + β·(1/Z)  (and the same for v), with Z the depth the renderer
  used for that frame: the flow predicted at the nearest and farthest depth of the scene
  separates camera translation (depends on depth) from rotation (does not);
* a global shift by phase correlation, for the one effect whose per-frame motion is too
  large for dense flow on tiny frames (rotate-360: 90°/s over a default 4 s scene).

Rendering is deterministic, so the numbers are too. Each threshold was set from the
measured values with room to spare (typically 2× or more), and the tests were checked to
fail on mirrored, flipped, time-reversed and frozen renders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from kandanim.camera import relative_move
from kandanim.engines.preview import PreviewEngine
from kandanim.plan import Plan, build_plan
from kandanim.render import Renderer
from kandanim.screenplay import from_mapping
from kandanim.spec import FOCUS_DISTANCE

# Small frames with sides that are multiples of 64; the height sets the focal length, so
# 128-high frames show twice the pixel motion of 64-high ones.
ASPECTS = {"landscape": (128, 64), "square": (128, 128), "portrait": (64, 128)}
FPS = 24
SCENE_SECONDS = 4.0  # the default scene: span-scene effects run at their usual rate
PAIRS = 12  # consecutive frame pairs measured: the first half second
BORDER = 4  # pixels next to the frame edge are new content invented by the fill
MIN_SPEED = 0.03  # px per frame: the slowest effect here (spin, portrait) measures ~0.07

EFFECTS = [
    "in-place", "zoom-in", "zoom-out", "left", "right", "up", "down", "turn-left",
    "turn-right", "tilt-up", "tilt-down", "orbit-left", "orbit-right", "spin-cw", "spin-ccw",
    "rotate-360", "dive-in", "look-around",
]

# Content motion of the translating and turning effects: (flow component, sign).
# Camera right → content slides left (u < 0); camera up (pedestal or tilt) → content
# slides down, which is +v because image y points down.
SLIDES: dict[str, tuple[str, int]] = {
    "right": ("tx", -1), "left": ("tx", +1),
    "up": ("ty", +1), "down": ("ty", -1),
    "turn-right": ("tx", -1), "turn-left": ("tx", +1),
    "tilt-up": ("ty", +1), "tilt-down": ("ty", -1),
}
TRUCKS = ("right", "left", "up", "down")  # the camera translates: near moves more than far

# Why clockwise is +curl: with y down, the field of a rotation by ω about the centre that
# is clockwise *on screen* is (u, v) = ω·(−y, x). Check: the point above the centre,
# (0, −r), moves to +x (right) and the point right of it, (r, 0), moves to +y (down):
# top → right → bottom is clockwise as the viewer sees it. Its curl ∂v/∂x − ∂u/∂y = 2ω.
SPINS = {"spin-cw": +1, "spin-ccw": -1}
ZOOMS = {"zoom-in": +1, "dive-in": +1, "zoom-out": -1}  # sign of the divergence
ORBITS = {"orbit-right": -1, "orbit-left": +1}  # which way near content moves (u sign)

ASPECT_IDS = list(ASPECTS)


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class PairMotion:
    """The motion from one frame to the next, in pixels (rates per frame)."""

    tx: float
    ty: float
    div: float
    curl: float
    speed: float  # typical length of the flow vectors (see block_speed)
    near: tuple[float, float]  # (u, v) the parallax fit predicts at depth `near`
    far: tuple[float, float]  # … and at depth `far`
    focus: tuple[float, float]  # … and at the focus distance, where orbits pivot
    shift: tuple[float, float]  # global shift by phase correlation


@dataclass(frozen=True)
class EffectMotion:
    effect: str
    aspect: str
    pairs: tuple[PairMotion, ...]

    def each(self, name: str) -> np.ndarray:
        return np.array([getattr(p, name) for p in self.pairs], dtype=np.float64)

    def mean(self, name: str) -> float:
        return float(self.each(name).mean())

    def at_focus(self, axis: int) -> float:
        """Mean over pairs of the fitted flow component `axis` at the focus distance."""
        return float(np.mean([p.focus[axis] for p in self.pairs]))

    def near_far(self, axis: int) -> tuple[float, float]:
        """Mean over pairs of the fitted flow component `axis` (0: u, 1: v) at near/far."""
        near = float(np.mean([p.near[axis] for p in self.pairs]))
        far = float(np.mean([p.far[axis] for p in self.pairs]))
        return near, far


def make_plan(effect: str, width: int, height: int) -> Plan:
    document = {
        "version": 1, "fps": FPS, "resolution": f"{width}x{height}", "seed": 7,
        "engine": "preview",
        "scenes": [{"prompt": "procedural", "effect": effect, "duration": SCENE_SECONDS}],
    }
    return build_plan(from_mapping(document, base_dir=Path.cwd()), engine="preview")


def render_start(plan: Plan, count: int) -> list[np.ndarray]:
    """The first `count` frames (the renderer streams, so the rest is never made)."""
    engine = PreviewEngine()
    engine.prepare(plan)
    frames: list[np.ndarray] = []
    for _, image in Renderer(plan, engine).frames():
        frames.append(image)
        if len(frames) == count:
            break
    return frames


def renderer_depths(plan: Plan, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The true depth of each frame: the built-in world's, seen from the frame's pose."""
    engine = PreviewEngine()
    engine.prepare(plan)
    scene = plan.scenes[0]
    start = plan.frames[0].pose
    depths = []
    for index in range(len(frames)):
        depth = engine.view_depth(scene, *relative_move(start, plan.frames[index].pose))
        assert depth is not None
        depths.append(depth)
    return depths


def contrast_normalised_grey(image: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """Grey levels with local contrast equalised: the faint clouds of the sky (the far end
    of every parallax fit) get as much say in the flow as the textured ground. Without it
    dense flow underestimates sky motion by half or more."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    mean = cv2.GaussianBlur(grey, (0, 0), sigma)
    variance = cv2.GaussianBlur((grey - mean) ** 2, (0, 0), sigma)
    # + 4: a floor of 2 grey levels, so 8-bit banding in a clear sky is not amplified
    normalised = (grey - mean) / np.sqrt(variance + 4.0)
    return np.clip(normalised * 40.0 + 128.0, 0, 255).astype(np.uint8)


def dense_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 2) Farnebäck flow from grey frame a to grey frame b."""
    return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 9, 5, 5, 1.1, 0)


def flow_weights(a: np.ndarray, b: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """How much each pixel's flow is trusted: texture (flat sky and blurry ground give no
    flow) where the backward flow brings the point home, away from the border."""
    texture = np.sqrt(np.maximum(cv2.cornerMinEigenVal(a.astype(np.float32), 5, 3), 0.0))
    backward = dense_flow(b, a)
    height, width = a.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    returned = cv2.remap(
        backward, xs + forward[..., 0], ys + forward[..., 1], cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    roundtrip = np.linalg.norm(forward + returned, axis=2)
    consistent = roundtrip < 0.3 + 0.1 * np.linalg.norm(forward, axis=2)
    inside = np.zeros_like(texture)
    inside[BORDER:-BORDER, BORDER:-BORDER] = 1.0
    return texture * consistent * inside


def weighted_lstsq(
    columns: list[np.ndarray], target: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Least-squares coefficients of `target` on `columns`, pixel by pixel, weighted."""
    root = np.sqrt(weights.ravel())
    design = np.stack([c.ravel() for c in columns], axis=1) * root[:, None]
    return np.linalg.lstsq(design, target.ravel() * root, rcond=None)[0]


def block_speed(flow: np.ndarray, weights: np.ndarray, block: int = 16) -> float:
    """Typical length of the motion in pixels: flow averaged over 16×16 blocks first, so
    per-pixel noise (which has a length but no direction) cancels instead of adding up."""
    height, width = weights.shape
    size = (width // block, height // block)
    weight_sum = cv2.resize(weights, size, interpolation=cv2.INTER_AREA)
    moved = cv2.resize(flow * weights[..., None], size, interpolation=cv2.INTER_AREA)
    lengths = np.linalg.norm(moved, axis=2) / np.maximum(weight_sum, 1e-12)
    return float(np.sum(lengths * weight_sum) / np.sum(weight_sum))


def fit_pair(
    a: np.ndarray, b: np.ndarray, depth: np.ndarray, near: float, far: float
) -> PairMotion:
    ga, gb = contrast_normalised_grey(a), contrast_normalised_grey(b)
    flow = dense_flow(ga, gb)
    weights = flow_weights(ga, gb, flow)
    height, width = ga.shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xs -= (width - 1) / 2.0  # the principal point (camera.intrinsics)
    ys -= (height - 1) / 2.0
    ones = np.ones_like(xs)
    tx, a_x, b_y = weighted_lstsq([ones, xs, ys], flow[..., 0], weights)
    ty, c_x, d_y = weighted_lstsq([ones, xs, ys], flow[..., 1], weights)
    inverse = 1.0 / depth.astype(np.float64)
    lines = [weighted_lstsq([ones, inverse], flow[..., k], weights) for k in (0, 1)]
    speed = block_speed(flow, weights)
    window = cv2.createHanningWindow((width, height), cv2.CV_64F)
    (sx, sy), _ = cv2.phaseCorrelate(ga.astype(np.float64), gb.astype(np.float64), window)
    return PairMotion(
        tx=float(tx), ty=float(ty), div=float(a_x + d_y), curl=float(c_x - b_y), speed=speed,
        near=tuple(float(alpha + beta / near) for alpha, beta in lines),  # type: ignore[arg-type]
        far=tuple(float(alpha + beta / far) for alpha, beta in lines),  # type: ignore[arg-type]
        focus=tuple(float(alpha + beta / FOCUS_DISTANCE) for alpha, beta in lines),  # type: ignore[arg-type]
        shift=(float(sx), float(sy)),
    )


@functools.cache
def measure(effect: str, aspect: str) -> EffectMotion:
    """Render the start of `effect` on `aspect` and fit every consecutive pair (cached:
    the in-place test compares against all the others)."""
    width, height = ASPECTS[aspect]
    plan = make_plan(effect, width, height)
    frames = render_start(plan, PAIRS + 1)
    depths = renderer_depths(plan, frames)
    pairs = tuple(
        fit_pair(frames[i], frames[i + 1], depths[i], plan.frames[i].near, plan.frames[i].far)
        for i in range(PAIRS)
    )
    return EffectMotion(effect, aspect, pairs)


# --------------------------------------------------------------------------- the checks


def _describe(motion: EffectMotion) -> str:
    names = ("tx", "ty", "div", "curl", "speed")
    return f"{motion.effect} on {motion.aspect}: " + ", ".join(
        f"{n}={motion.mean(n):+.4f}" for n in names
    )


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", list(SLIDES))
def test_moves_and_turns_slide_the_content_the_named_way(effect: str, aspect: str) -> None:
    motion = measure(effect, aspect)
    component, sign = SLIDES[effect]
    other = "ty" if component == "tx" else "tx"
    # every frame moves the named way (no jitter back and forth), and mostly that way
    assert np.all(np.sign(motion.each(component)) == sign), _describe(motion)
    assert abs(motion.mean(component)) > 4 * abs(motion.mean(other)), _describe(motion)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", TRUCKS)
def test_sideways_and_vertical_moves_show_parallax(effect: str, aspect: str) -> None:
    """A translating camera moves near content further than far content, the same way."""
    motion = measure(effect, aspect)
    component, sign = SLIDES[effect]
    near, far = motion.near_far(0 if component == "tx" else 1)
    assert np.sign(near) == sign, _describe(motion)
    assert abs(near) > 2 * abs(far), (near, far, _describe(motion))


def relative_parallax(motion: EffectMotion, component: str) -> float:
    """How much more near content moves than far content, relative to the mean motion."""
    near, far = motion.near_far(0 if component == "tx" else 1)
    return abs(near - far) / abs(motion.mean(component))


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize(("turn", "move"), [("turn-right", "right"), ("tilt-up", "up")])
def test_turning_in_place_shows_far_less_parallax_than_moving(
    turn: str, move: str, aspect: str
) -> None:
    """A camera turning about its own centre shifts near and far content alike; one that
    travels does not. (The turn's measured parallax is not exactly zero: flow in the faint
    sky, the far end of the fit, is the least accurate.)"""
    component, _ = SLIDES[turn]
    turning = relative_parallax(measure(turn, aspect), component)
    moving = relative_parallax(measure(move, aspect), component)
    assert turning < 0.4 * moving, (turning, moving)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", list(ZOOMS))
def test_zooms_expand_or_contract_the_picture(effect: str, aspect: str) -> None:
    motion = measure(effect, aspect)
    sign = ZOOMS[effect]
    assert np.all(np.sign(motion.each("div")) == sign), _describe(motion)
    # dive-in banks (rolls) with its weave by design: its curl may be half its divergence
    dominance = 1.5 if effect == "dive-in" else 3.0
    assert abs(motion.mean("div")) > dominance * abs(motion.mean("curl")), _describe(motion)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", list(SPINS))
def test_spins_turn_the_picture_the_named_way_on_screen(effect: str, aspect: str) -> None:
    motion = measure(effect, aspect)
    sign = SPINS[effect]  # +1: clockwise on screen = positive curl with y down (see top)
    assert np.all(np.sign(motion.each("curl")) == sign), _describe(motion)
    assert abs(motion.mean("curl")) > 4 * abs(motion.mean("div")), _describe(motion)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", list(ORBITS))
def test_orbits_swing_near_and_far_content_opposite_ways(effect: str, aspect: str) -> None:
    """Arcing around the subject: content nearer than the focus slides against the camera's
    travel, content beyond it the other way (the picture pivots about the subject)."""
    motion = measure(effect, aspect)
    sign = ORBITS[effect]
    near, far = motion.near_far(0)
    assert np.sign(near) == sign and np.sign(far) == -sign, (near, far, _describe(motion))
    # the subject in the middle (scaled to the focus distance) is the pivot: it stays put
    assert abs(motion.at_focus(0)) < 0.25 * abs(near), (motion.at_focus(0), near)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
def test_rotate_360_turns_right_fast(aspect: str) -> None:
    """A whole turn over a 4 s scene is 3.75° a frame: too far for dense flow on a 64 px
    wide frame, so the global shift (phase correlation) measures it. Like turn-right
    (content slides left), only much faster."""
    motion = measure("rotate-360", aspect)
    shifts = np.array([p.shift[0] for p in motion.pairs])
    assert np.count_nonzero(shifts < 0) >= PAIRS - 2, shifts
    turn = measure("turn-right", aspect)
    assert np.median(shifts) < 5 * turn.mean("tx") < 0, (shifts, _describe(turn))


@pytest.mark.parametrize("aspect", ASPECT_IDS)
def test_in_place_barely_moves(aspect: str) -> None:
    still = measure("in-place", aspect).mean("speed")
    others = [measure(e, aspect).mean("speed") for e in EFFECTS if e != "in-place"]
    assert still < 0.1 * float(np.median(others)), (still, others)
    assert still < 0.25 * min(others), (still, others)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
@pytest.mark.parametrize("effect", [e for e in EFFECTS if e != "in-place"])
def test_every_moving_effect_is_visible(effect: str, aspect: str) -> None:
    """Signs alone would pass a frozen picture (flow 0.000…1 has a sign): every effect must
    move content by a measurable amount, well above the in-place drift."""
    speed = measure(effect, aspect).mean("speed")
    still = measure("in-place", aspect).mean("speed")
    assert speed > MIN_SPEED and speed > 3 * still, (speed, still)


@pytest.mark.parametrize("aspect", ASPECT_IDS)
def test_look_around_starts_by_arcing_right(aspect: str) -> None:
    """The preset arcs right first, like orbit-right: content in front of the subject
    slides left, the background right, the subject stays."""
    motion = measure("look-around", aspect)
    near, far = motion.near_far(0)
    assert near < 0 < far and motion.mean("curl") > 0, (near, far, _describe(motion))
    assert abs(motion.at_focus(0)) < 0.25 * abs(near), (motion.at_focus(0), near)
