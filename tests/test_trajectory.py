"""Keyframes → motion: interpolation, extrapolation, easing and the continuous camera path."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kandanim import trajectory
from kandanim.camera import Pose, relative_move
from kandanim.presets import load_catalogue
from kandanim.spec import Keyframe, ScheduleKey
from kandanim.trajectory import (
    AXES,
    Rigid,
    SceneMotion,
    Track,
    camera_path,
    ease,
    ease_end_slope,
    quaternion_from_matrix,
    rigid_exp,
    rigid_log,
    scene_motion,
    schedule_value,
    slerp_quaternion,
    user_values,
)

EASINGS = ("linear", "in", "out", "in-out")
CATALOGUE = load_catalogue()

position = st.floats(-3.0, 3.0)
turn = st.floats(-170.0, 170.0)
tilt = st.floats(-80.0, 80.0)


@st.composite
def keyframe_lists(draw: st.DrawFn) -> list[Keyframe]:
    """1–5 keyframes starting at rest at t = 0, times increasing, some fields left out."""
    count = draw(st.integers(1, 5))
    gaps = draw(st.lists(st.floats(0.1, 3.0), min_size=count - 1, max_size=count - 1))
    times = np.cumsum([0.0, *gaps]).tolist()
    keys = [Keyframe(t=0)]
    for t in times[1:]:
        values = {
            "x": draw(st.none() | position),
            "y": draw(st.none() | position),
            "z": draw(st.none() | position),
            "yaw": draw(st.none() | turn),
            "pitch": draw(st.none() | tilt),
            "roll": draw(st.none() | turn),
        }
        keys.append(Keyframe(t=t, ease=draw(st.sampled_from(EASINGS)), **values))
    return keys


def held_values(keys: list[Keyframe]) -> list[list[float]]:
    current, out = [0.0] * 6, []
    for key in keys:
        given = [getattr(key, axis) for axis in AXES]
        current = [c if g is None else g for g, c in zip(given, current)]
        out.append(list(current))
    return out


def same(a: Rigid, b: Rigid, atol: float = 1e-7) -> bool:
    return np.allclose(a.rotation, b.rotation, atol=atol) and np.allclose(
        a.position, b.position, atol=atol
    )


# --------------------------------------------------------------------------- easing


@pytest.mark.parametrize("name", EASINGS)
def test_easing_endpoints_and_monotonic(name: str) -> None:
    assert ease(name, 0.0) == 0.0 and ease(name, 1.0) == 1.0
    samples = [ease(name, u) for u in np.linspace(0, 1, 101)]
    assert all(b >= a for a, b in itertools.pairwise(samples))
    slope = (ease(name, 1.0) - ease(name, 1.0 - 1e-6)) / 1e-6
    assert slope == pytest.approx(ease_end_slope(name), abs=1e-4)


def test_easing_shapes_differ_in_the_middle() -> None:
    assert ease("in", 0.5) < ease("linear", 0.5) < ease("out", 0.5)
    assert ease("in-out", 0.5) == pytest.approx(0.5)
    assert ease("in-out", 0.25) < 0.25


def test_schedule_values() -> None:
    keys = [ScheduleKey(t=1, value=0.2), ScheduleKey(t=3, value=0.6, ease="in-out")]
    assert schedule_value(0.3, 10.0) == 0.3
    assert schedule_value(keys, 0.0) == pytest.approx(0.2)
    assert schedule_value(keys, 2.0) == pytest.approx(0.4)
    assert schedule_value(keys, 1.5) < 0.3  # eased: slow start
    assert schedule_value(keys, 9.0) == pytest.approx(0.6)


# --------------------------------------------------------------------------- rigid maths


@given(st.lists(st.floats(-3, 3), min_size=3, max_size=3), turn, tilt, turn)
def test_rigid_log_and_exp_invert_each_other(
    xyz: list[float], yaw: float, p: float, r: float
) -> None:
    motion = Rigid.from_user([*xyz, yaw, p, r])
    assert same(rigid_exp(rigid_log(motion)), motion, atol=1e-9)


def test_compose_and_inverse() -> None:
    a = Rigid.from_user([0.3, 0.1, -0.2, 20, 5, -3])
    b = Rigid.from_user([-0.1, 0.4, 0.9, -40, 12, 8])
    assert same(a.compose(a.inverse()), Rigid.identity())
    assert same(a.compose(b).inverse(), b.inverse().compose(a.inverse()))


# --------------------------------------------------------------------------- tracks


@settings(max_examples=60, deadline=None)
@given(keyframe_lists())
def test_pose_equals_each_keyframe_at_its_time(keys: list[Keyframe]) -> None:
    track = Track(keys, extrapolate=True)
    for key, values in zip(keys, held_values(keys)):
        assert same(track.at(key.t), Rigid.from_user(values), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(keyframe_lists(), st.floats(0.0, 20.0))
def test_rotations_stay_orthonormal(keys: list[Keyframe], t: float) -> None:
    rotation = Track(keys).at(t).rotation
    assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_missing_fields_hold_the_previous_value() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=1, x=1.0, yaw=10), Keyframe(t=2, z=2.0)])
    x, y, z, yaw, pitch, roll = user_values(track.at(2.0))
    assert (x, z, yaw) == pytest.approx((1.0, 2.0, 10.0))
    assert (y, pitch, roll) == pytest.approx((0.0, 0.0, 0.0))


def test_rotation_is_slerp_not_per_angle() -> None:
    end = Keyframe(t=1, yaw=60, pitch=40, roll=-30)
    track = Track([Keyframe(t=0), end])
    q0 = quaternion_from_matrix(np.eye(3))
    q1 = quaternion_from_matrix(Rigid.from_user([0, 0, 0, 60, 40, -30]).rotation)
    for u in (0.25, 0.5, 0.8):
        expected = slerp_quaternion(q0, q1, u)
        got = quaternion_from_matrix(track.at(u).rotation)
        assert np.allclose(got, expected, atol=1e-9)
    # per-angle interpolation would give a different orientation half way
    per_angle = Rigid.from_user([0, 0, 0, 30, 20, -15]).rotation
    assert not np.allclose(track.at(0.5).rotation, per_angle, atol=1e-3)


def test_translation_without_turning_goes_straight_with_easing() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=2, x=1.0, y=-2.0, z=0.5, ease="in")])
    for t in (0.5, 1.0, 1.5):
        s = ease("in", t / 2)
        assert np.allclose(track.at(t).user_position(), [s, -2 * s, 0.5 * s])


def test_multi_turn_keys_turn_that_far() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=4, yaw=360)])
    yaws = [user_values(track.at(t))[3] for t in (1, 2, 3)]
    assert yaws[0] == pytest.approx(90) and abs(yaws[1]) == pytest.approx(180)
    assert yaws[2] == pytest.approx(-90)
    assert same(track.at(4), Rigid.identity())


def test_rates_continue_after_the_last_key() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=1, z=0.2, yaw=3)], extrapolate=True)
    # a constant screw motion: the move over any second is the same
    step = track.at(1).inverse().compose(track.at(2))
    later = track.at(9).inverse().compose(track.at(10))
    assert same(step, later, atol=1e-9) and same(step, track.at(1), atol=1e-9)


def test_positions_hold_after_the_last_key_when_not_extrapolating() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=1, z=0.2)], extrapolate=False)
    assert same(track.at(5), track.at(1))


def test_ease_out_ending_comes_to_rest() -> None:
    track = Track([Keyframe(t=0), Keyframe(t=1, z=1.0, ease="out")], extrapolate=True)
    assert same(track.at(3), track.at(1))
    track = Track([Keyframe(t=0), Keyframe(t=1, z=1.0, ease="in")], extrapolate=True)
    assert track.at(2).user_position()[2] == pytest.approx(3.0)  # leaves at twice the mean


def test_late_first_key_starts_from_rest_and_early_offsets_are_rebased() -> None:
    late = Track([Keyframe(t=2, x=1.0)])
    assert same(late.at(0), Rigid.identity())
    assert late.at(1).user_position()[0] == pytest.approx(0.5)
    offset = Track([Keyframe(t=0, yaw=30), Keyframe(t=1, yaw=40)])
    assert same(offset.at(0), Rigid.identity())
    assert user_values(offset.at(1))[3] == pytest.approx(10)


def test_decreasing_times_are_rejected() -> None:
    with pytest.raises(ValueError, match="increase"):
        Track([Keyframe(t=1), Keyframe(t=1)])


def test_custom_camera_rides_on_the_effect() -> None:
    preset = CATALOGUE.get("zoom-in")
    motion = scene_motion(preset, [Keyframe(t=0), Keyframe(t=1, yaw=10)], 4.0)
    x, _y, z, yaw, _pitch, _roll = user_values(motion.at(1.0))
    assert z == pytest.approx(0.15) and x == pytest.approx(0.0, abs=1e-12)
    assert yaw == pytest.approx(10)
    assert user_values(motion.at(3.0))[2] == pytest.approx(0.45)  # the effect keeps going


def test_span_scene_stretches_to_the_scene() -> None:
    preset = CATALOGUE.get("rotate-360")
    for seconds in (2.0, 6.0):
        motion = scene_motion(preset, None, seconds)
        assert user_values(motion.at(seconds / 4))[3] == pytest.approx(90)


# --------------------------------------------------------------------------- the camera path


def step_moves(poses: list[Pose]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [relative_move(a, b) for a, b in itertools.pairwise(poses)]


RATE_PRESETS = [
    p.name for p in CATALOGUE.presets() if p.span == "seconds" and len(p.keyframes) == 2
]


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(RATE_PRESETS),
    st.lists(st.floats(0.3, 5.0), min_size=2, max_size=3),
    st.sampled_from([1, 12, 24, 25, 30, 60]),
)
def test_velocity_is_continuous_across_joins_of_same_rate_scenes(
    name: str, durations: list[float], fps: int
) -> None:
    preset = CATALOGUE.get(name)
    counts = [max(1, round(d * fps)) for d in durations]
    motions = [scene_motion(preset, None, n / fps) for n in counts]
    moves = step_moves(camera_path(motions, counts, fps))
    first_r, first_t = moves[0]
    for rotation, translation in moves:  # finite differences: every step the same
        assert np.allclose(rotation, first_r, atol=1e-9)
        assert np.allclose(translation, first_t, atol=1e-9)


def test_dive_in_weave_joins_smoothly_on_default_scenes() -> None:
    preset = CATALOGUE.get("dive-in")
    fps, counts = 24, [96, 96]
    moves = step_moves(camera_path([scene_motion(preset, None, 4.0)] * 2, counts, fps))
    join = 95  # the step from the last frame of scene 1 to the first of scene 2
    for a, b in ((join - 1, join), (join, join + 1)):
        assert np.allclose(moves[a][1], moves[b][1], atol=2e-3)
        assert np.allclose(moves[a][0], moves[b][0], atol=2e-4)


def test_the_camera_never_jumps_at_a_join() -> None:
    fps, counts = 24, [48, 48, 48]
    motions = [
        scene_motion(CATALOGUE.get(n), None, 2.0) for n in ("turn-right", "zoom-in", "orbit-left")
    ]
    poses = camera_path(motions, counts, fps)
    steps = [np.linalg.norm(t) + np.linalg.norm(r - np.eye(3)) for r, t in step_moves(poses)]
    assert max(steps) < 0.02  # the largest per-frame move anywhere is a normal step


def test_zoom_after_a_turn_goes_along_the_new_view_axis() -> None:
    fps, counts = 10, [10, 10]
    turn = SceneMotion(Track([Keyframe(t=0), Keyframe(t=1, yaw=90)], extrapolate=False))
    motions = [turn, scene_motion(CATALOGUE.get("zoom-in"), None, 1.0)]
    poses = camera_path(motions, counts, fps)
    start, end = poses[10], poses[19]
    assert start.yaw == pytest.approx(90)
    assert end.x - start.x == pytest.approx(0.15 * 0.9)  # moving right in the world
    assert end.z - start.z == pytest.approx(0.0, abs=1e-9)


def test_full_turn_reads_continuously_up_to_360() -> None:
    preset = CATALOGUE.get("rotate-360")
    poses = camera_path([scene_motion(preset, None, 2.0)] * 2, [48, 48], 24)
    yaws = [p.yaw for p in poses]
    assert all(b > a for a, b in itertools.pairwise(yaws))
    assert yaws[48] == pytest.approx(360.0)
    assert yaws[-1] == pytest.approx(720.0 - 7.5)


def test_tilting_past_the_vertical_stays_continuous() -> None:
    motion = SceneMotion(Track([Keyframe(t=0), Keyframe(t=1, pitch=30)], extrapolate=True))
    poses = camera_path([motion], [100], 20)  # 5 s at 30°/s: up to 150°
    pitches = [p.pitch for p in poses]
    assert all(b > a for a, b in itertools.pairwise(pitches))
    assert pitches[-1] == pytest.approx(30 * 99 / 20)
    assert math.isclose(poses[-1].yaw % 360, 0.0, abs_tol=1e-6) or math.isclose(
        poses[-1].yaw % 360, 360.0, abs_tol=1e-6
    )


# --------------------------------------------------------------------------- smooth multi-key paths


def velocities(track: Track, seconds: float, fps: int = 24) -> np.ndarray:
    """(n, 6) body-frame twist per second of each frame step: (ω rad/s, v units/s)."""
    poses = [track.at(i / fps) for i in range(round(seconds * fps) + 1)]
    steps = itertools.pairwise(poses)
    return np.array([rigid_log(a.inverse().compose(b)) * fps for a, b in steps])


def piecewise_track(keyframes, monkeypatch: pytest.MonkeyPatch, **options) -> Track:
    """The track as it was before multi-key paths were smoothed: one screw per segment."""
    with monkeypatch.context() as patch:
        patch.setattr(trajectory, "_smooth_joins", lambda segments: segments)
        return Track(keyframes, **options)


def test_dive_in_weave_has_no_velocity_jump_at_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The weave's keys every 0.5 s: the old piecewise screws changed the turn rate by
    ~2°/s (0.036 rad/s) from one frame to the next at each key; now, while it weaves, the
    rate changes only as fast as the weave itself (~6°/s² · 1/24 s ≈ 0.005 rad/s per
    frame). Where the weave ends (8 s → 8.5 s) the turn still comes to rest within 0.5 s."""
    keys = CATALOGUE.get("dive-in").keyframes
    new = np.abs(np.diff(velocities(Track(keys), 9.0), axis=0))[:, :3]
    old = np.abs(np.diff(velocities(piecewise_track(keys, monkeypatch), 9.0), axis=0))[:, :3]
    weaving = slice(0, 7 * 24)  # frame steps up to 7 s: inside the sampled sine
    assert old[weaving].max() > 0.03  # the defect this guards against is really measured
    assert new[weaving].max() < 0.008
    assert new.max() < 0.4 * old.max()


def test_a_multi_key_linear_path_passes_its_keys_with_continuous_velocity() -> None:
    keys = [
        Keyframe(t=0), Keyframe(t=1, x=1.0, yaw=10), Keyframe(t=1.5, x=1.2, yaw=-5),
        Keyframe(t=3, x=3.0, z=1.0, yaw=0, pitch=4),
    ]
    track = Track(keys, extrapolate=False, smooth=True)
    for key in keys[1:]:
        values = user_values(track.at(key.t))
        want = [getattr(key, axis) or 0.0 for axis in AXES]
        assert np.allclose(values, want, atol=1e-9)
    steps = velocities(track, 3.0, fps=240)
    jumps = np.linalg.norm(np.diff(steps, axis=0), axis=1)
    assert jumps.max() < 0.1 * np.linalg.norm(steps, axis=1).max()


@pytest.mark.parametrize("name", ["look-around", "orbit-right", "rotate-360", "zoom-in"])
def test_eased_two_key_and_multi_turn_paths_are_unchanged(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = CATALOGUE.get(name).keyframes
    new, old = Track(keys), piecewise_track(keys, monkeypatch)
    for t in np.linspace(0.0, 1.5, 37):
        a, b = new.at(float(t)), old.at(float(t))
        assert np.array_equal(a.rotation, b.rotation)
        assert np.array_equal(a.position, b.position)
