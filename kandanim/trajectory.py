"""Keyframes → camera motion over time (numpy only; no file or model I/O).

A keyframe list (a preset's `keyframes`, a scene's `camera:`) describes the camera pose
*relative to where the scene starts*, in the user convention of `camera.py`. This module
turns it into a `Track`: the relative pose (`Rigid`, OpenCV axes) at any scene time t.

Rules, decided here once:

* A field a keyframe leaves out holds the previous keyframe's value (0 on the first).
  When the first keyframe is after t = 0, a rest keyframe (all zeros) is put at t = 0.
* Between two keyframes the camera follows the **screw motion** that carries one pose
  to the other (`T_a · exp(s · log(T_a⁻¹ T_b))`, the rigid-body form of slerp): the
  rotation is exactly the quaternion slerp of the two orientations; the position moves in
  a straight line when the orientation does not change and along a circular arc when it
  does. So a keyframe pair on an orbit (move right, yaw left by the matching angle) orbits
  exactly around the focus point, and a rate continued past the last key stays the same
  rigid motion. `s = ease(u)`, where `u` is the linear fraction of the segment and the
  *later* keyframe's `ease` shapes it.
* Where a preset's keys follow one another with `linear` easing (a path written as
  samples, like `dive-in`'s weave), the velocity is continuous through the keys: each such inner key
  gets the Catmull-Rom velocity (the body-frame twist rate from the key before to the
  key after), and the two segments that meet there become cubic Bézier curves on SE(3)
  in cumulative form (`_HermiteSegment`) that leave and reach their keys at those
  velocities. Keys are still passed exactly. A segment whose keys are not such inner
  keys keeps its screw motion bit for bit: two-key presets, orbits, eased keys (whose
  easing already sets the velocity at the key) and multi-turn segments do not change.
  A scene's own `camera:` keys are positions and interpolate segment by segment exactly
  as written (`smooth=False`): imported Deforum and Parseq paths are simplified against
  that rule, within a stated tolerance.
* Rotations are interpolated as rotations, never per angle. The one exception makes
  multi-turn keys mean what they say: a segment whose yaw, pitch or roll changes by more
  than 90° is first split into equal parts by angle (yaw 0 → 360 becomes four 90° turns),
  then each part is a slerp.
* After the last keyframe: `extrapolate=True` (presets, whose keys are rates) continues
  with the velocity the last segment ends with, as the same screw motion (an `ease: out`
  or `in-out` ending therefore comes to rest); `extrapolate=False` (a scene's `camera:`
  keys, which are positions) holds the last pose. Before t = 0 the pose is the start pose.
* The motion is re-based on its pose at t = 0 (`T(0)⁻¹ · T(t)`), so every track starts
  at rest exactly where the previous scene ended: the camera never jumps.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kandanim.camera import Pose, angles_from_rotation, rotation_from_angles
from kandanim.spec import Easing, ScheduleKey

AXES = ("x", "y", "z", "yaw", "pitch", "roll")
_USER_TO_CV = np.array([1.0, -1.0, 1.0])
MAX_PIECE_ANGLE = 90.0  # degrees per Euler angle before a segment is split (multi-turn keys)
MAX_PIECE_GEODESIC = math.radians(120.0)  # keep each slerp well away from the 180° ambiguity


class KeyframeLike(Protocol):
    """What a track reads from a keyframe (`spec.Keyframe` satisfies it)."""

    t: float
    x: float | None
    y: float | None
    z: float | None
    yaw: float | None
    pitch: float | None
    roll: float | None
    ease: Easing


# --------------------------------------------------------------------------- easing


def ease(name: Easing, u: float) -> float:
    """Eased fraction for a linear fraction u in [0, 1]; 0 → 0 and 1 → 1 for every curve."""
    u = min(max(u, 0.0), 1.0)
    if name == "linear":
        return u
    if name == "in":
        return u * u
    if name == "out":
        return 1.0 - (1.0 - u) * (1.0 - u)
    if name == "in-out":
        return u * u * (3.0 - 2.0 * u)
    raise ValueError(f"unknown easing {name!r}")


def ease_end_slope(name: Easing) -> float:
    """d ease / du at u = 1: how much of the segment's mean rate is left at its end."""
    return {"linear": 1.0, "in": 2.0, "out": 0.0, "in-out": 0.0}[name]


def schedule_value(schedule: float | Sequence[ScheduleKey], t: float) -> float:
    """A number, or `{t, value, ease}` keys interpolated at time t (held outside the keys)."""
    if isinstance(schedule, (int, float)):
        return float(schedule)
    keys = list(schedule)
    if t <= keys[0].t:
        return float(keys[0].value)
    for before, after in itertools.pairwise(keys):
        if t <= after.t:
            span = after.t - before.t
            fraction = ease(after.ease, (t - before.t) / span) if span > 0 else 1.0
            return float(before.value + (after.value - before.value) * fraction)
    return float(keys[-1].value)


# --------------------------------------------------------------------------- rigid motions


@dataclass(frozen=True, eq=False)
class Rigid:
    """A camera pose relative to a reference camera: `ref_from_cam`, OpenCV axes.

    A point X in this camera's frame is `rotation @ X + position` in the reference frame;
    `position` is this camera's centre there. Shapes (3, 3) and (3,).
    """

    rotation: np.ndarray
    position: np.ndarray

    @staticmethod
    def identity() -> Rigid:
        return Rigid(np.eye(3), np.zeros(3))

    @staticmethod
    def from_user(values: Sequence[float]) -> Rigid:
        """From (x, y, z, yaw, pitch, roll) in the user convention (units, degrees)."""
        x, y, z, yaw, pitch, roll = (float(v) for v in values)
        return Rigid(rotation_from_angles(yaw, pitch, roll), np.array([x, y, z]) * _USER_TO_CV)

    @staticmethod
    def from_pose(pose: Pose) -> Rigid:
        return Rigid(pose.world_from_cam_rotation, pose.position_cv)

    def compose(self, other: Rigid) -> Rigid:
        """`self ∘ other`: `other` is expressed in this camera's frame (a move on top)."""
        return Rigid(self.rotation @ other.rotation, self.rotation @ other.position + self.position)

    def inverse(self) -> Rigid:
        back = self.rotation.T
        return Rigid(back, -(back @ self.position))

    def user_position(self) -> np.ndarray:
        """(x, y, z) in the user convention (y up)."""
        return self.position * _USER_TO_CV


def _hat(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) with w >= 0 of a rotation matrix (Shepperd's method)."""
    r = rotation
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(1.0 + trace)
        q = [0.25 * s, (r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2])
        q = [(r[2, 1] - r[1, 2]) / s, 0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s]
    elif r[1, 1] > r[2, 2]:
        s = 2.0 * math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2])
        q = [(r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1])
        q = [(r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s]
    quaternion = np.array(q) / np.linalg.norm(q)
    return quaternion if quaternion[0] >= 0 else -quaternion


def rotation_log(rotation: np.ndarray) -> np.ndarray:
    """Rotation vector (axis × angle in radians, angle in [0, π]) of a rotation matrix."""
    q = quaternion_from_matrix(rotation)
    sin_half = float(np.linalg.norm(q[1:]))
    if sin_half < 1e-12:
        return 2.0 * q[1:]  # first order: the angle is ~2·|v|
    angle = 2.0 * math.atan2(sin_half, q[0])
    return q[1:] * (angle / sin_half)


def rotation_exp(w: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(w))
    k = _hat(w)
    if angle < 1e-8:
        return np.eye(3) + k + 0.5 * k @ k
    return np.eye(3) + (math.sin(angle) / angle) * k + ((1 - math.cos(angle)) / angle**2) * k @ k


def _left_jacobian(w: np.ndarray) -> np.ndarray:
    """V(ω) with exp([ω, v]).position = V(ω) @ v (SE(3) exponential)."""
    angle = float(np.linalg.norm(w))
    k = _hat(w)
    if angle < 1e-4:  # Taylor terms: the closed form loses precision here
        a, b = 0.5 - angle**2 / 24.0, 1.0 / 6.0 - angle**2 / 120.0
    else:
        a = (1.0 - math.cos(angle)) / angle**2
        b = (angle - math.sin(angle)) / angle**3
    return np.eye(3) + a * k + b * (k @ k)


def rigid_log(motion: Rigid) -> np.ndarray:
    """Twist (ωx, ωy, ωz, vx, vy, vz) of a rigid motion, so that `rigid_exp` inverts it."""
    w = rotation_log(motion.rotation)
    v = np.linalg.solve(_left_jacobian(w), motion.position)
    return np.concatenate([w, v])


def rigid_exp(twist: np.ndarray) -> Rigid:
    """The rigid motion of a twist: a rotation about a fixed axis plus a slide along it."""
    w, v = twist[:3], twist[3:]
    return Rigid(rotation_exp(w), _left_jacobian(w) @ v)


def slerp_quaternion(q0: np.ndarray, q1: np.ndarray, s: float) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9999995:
        q = q0 + s * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    return (math.sin((1 - s) * theta) * q0 + math.sin(s * theta) * q1) / math.sin(theta)


# --------------------------------------------------------------------------- keyframe tracks


@dataclass(frozen=True)
class ResolvedKey:
    """A keyframe with every value filled in: t in seconds, values in AXES order."""

    t: float
    values: tuple[float, ...]
    ease: Easing


def resolve_keys(keyframes: Sequence[KeyframeLike], time_scale: float = 1.0) -> list[ResolvedKey]:
    """Fill held values, scale times (span: scene), and add a rest key at t = 0 if needed.

    Raises ValueError when the times do not increase (the screenplay loader reports it
    with a file position first; this guards data built in code).
    """
    if not keyframes:
        raise ValueError("a keyframe list needs at least one keyframe")
    current = [0.0] * len(AXES)
    keys: list[ResolvedKey] = []
    for keyframe in keyframes:
        for i, axis in enumerate(AXES):
            value = getattr(keyframe, axis)
            if value is not None:
                current[i] = float(value)
        t = float(keyframe.t) * time_scale
        if keys and t <= keys[-1].t:
            raise ValueError(f"keyframe times must increase: t={keyframe.t:g} after a later key")
        keys.append(ResolvedKey(t, tuple(current), keyframe.ease))
    if keys[0].t > 0:
        keys.insert(0, ResolvedKey(0.0, (0.0,) * len(AXES), "linear"))
    return keys


@dataclass(frozen=True, eq=False)
class _Segment:
    """Keyframe a → b, split into equal screw-motion pieces (more than one for big turns)."""

    t0: float
    t1: float
    easing: Easing
    starts: tuple[Rigid, ...]  # pose at the start of each piece
    twists: tuple[np.ndarray, ...]  # twist of each piece over its whole length
    end: Rigid

    def at(self, t: float) -> Rigid:
        s = ease(self.easing, (t - self.t0) / (self.t1 - self.t0)) * len(self.starts)
        piece = min(int(s), len(self.starts) - 1)
        return self.starts[piece].compose(rigid_exp(self.twists[piece] * (s - piece)))

    def end_rate(self) -> np.ndarray:
        """Body-frame twist per second with which the segment leaves its last keyframe."""
        pieces_per_second = len(self.starts) / (self.t1 - self.t0)
        return self.twists[-1] * pieces_per_second * ease_end_slope(self.easing)


@dataclass(frozen=True, eq=False)
class _HermiteSegment:
    """Keyframe a → b as a cubic Bézier curve on SE(3) (cumulative form, Kim et al. 1995):
    `T(u) = P0 · exp(ω1·β1(u)) · exp(ω2·β2(u)) · exp(ω3·β3(u))` with the cumulative
    Bernstein weights β1 = 1 − (1 − u)³, β2 = 3u² − 2u³, β3 = u³ and ωi = log(P(i-1)⁻¹ Pi).

    The control poses `P1 = P0 · exp(v0·Δ/3)` and `P2 = P3 · exp(−v1·Δ/3)` make the
    body-frame velocity exactly `v0` at a and `v1` at b (twists per second), so two
    segments sharing a key velocity join with continuous velocity. With v0 = v1 = the
    screw motion's own rate the curve is that screw motion (β1 + β2 + β3 = 3u).
    """

    t0: float
    t1: float
    start: Rigid
    omegas: tuple[np.ndarray, np.ndarray, np.ndarray]
    end: Rigid
    rate_out: np.ndarray

    @staticmethod
    def build(segment: _Segment, v0: np.ndarray, v1: np.ndarray) -> _HermiteSegment:
        span = segment.t1 - segment.t0
        first, last = segment.starts[0], segment.end
        second = first.compose(rigid_exp(v0 * span / 3.0))
        third = last.compose(rigid_exp(-v1 * span / 3.0))
        omegas = (v0 * span / 3.0, rigid_log(second.inverse().compose(third)), v1 * span / 3.0)
        return _HermiteSegment(segment.t0, segment.t1, first, omegas, last, v1)

    def at(self, t: float) -> Rigid:
        u = min(max((t - self.t0) / (self.t1 - self.t0), 0.0), 1.0)
        weights = (1.0 - (1.0 - u) ** 3, u * u * (3.0 - 2.0 * u), u**3)
        pose = self.start
        for omega, weight in zip(self.omegas, weights, strict=True):
            pose = pose.compose(rigid_exp(omega * weight))
        return pose

    def end_rate(self) -> np.ndarray:
        return self.rate_out


def _own_rate(segment: _Segment) -> np.ndarray | None:
    """The constant body-frame twist per second of a one-piece linear segment, else None
    (eased and multi-turn segments keep their own shape)."""
    if segment.easing != "linear" or len(segment.twists) != 1:
        return None
    return segment.twists[0] / (segment.t1 - segment.t0)


def _smooth_joins(segments: list[_Segment]) -> list[_Segment | _HermiteSegment]:
    """Give every key between two one-piece linear segments a Catmull-Rom velocity and
    turn the segments touching such keys into `_HermiteSegment`s (see the module notes).

    The key velocity is the chord rate `(Δa·ra + Δb·rb) / (Δa + Δb)` of the two segments'
    own rates ra, rb (body-frame twists, which a screw motion keeps constant along it),
    i.e. the twist from the key before to the key after over their time apart.
    """
    rates = [_own_rate(segment) for segment in segments]
    inner: list[np.ndarray | None] = [None]  # velocity at the start key of each segment
    for (a, ra), (b, rb) in itertools.pairwise(zip(segments, rates, strict=True)):
        if ra is None or rb is None:
            inner.append(None)
            continue
        da, db = a.t1 - a.t0, b.t1 - b.t0
        inner.append((da * ra + db * rb) / (da + db))
    inner.append(None)  # the last key: the last segment's own rate carries on
    smoothed: list[_Segment | _HermiteSegment] = []
    for i, (segment, rate) in enumerate(zip(segments, rates, strict=True)):
        v0, v1 = inner[i], inner[i + 1]
        if rate is None or (v0 is None and v1 is None):
            smoothed.append(segment)
            continue
        smoothed.append(_HermiteSegment.build(
            segment, rate if v0 is None else v0, rate if v1 is None else v1
        ))
    return smoothed


def _segment(a: ResolvedKey, b: ResolvedKey) -> _Segment:
    va, vb = np.array(a.values), np.array(b.values)
    turn = float(np.max(np.abs(vb[3:] - va[3:])))
    count = max(1, math.ceil(turn / MAX_PIECE_ANGLE - 1e-9))
    while True:
        poses = [Rigid.from_user(va + (vb - va) * j / count) for j in range(count + 1)]
        twists = [rigid_log(p.inverse().compose(q)) for p, q in itertools.pairwise(poses)]
        if all(np.linalg.norm(tw[:3]) <= MAX_PIECE_GEODESIC for tw in twists):
            break
        count += 1
    return _Segment(a.t, b.t, b.ease, tuple(poses[:-1]), tuple(twists), poses[-1])


class Track:
    """One keyframe list as a function of time: the pose relative to the pose at t = 0."""

    def __init__(
        self,
        keyframes: Sequence[KeyframeLike],
        *,
        time_scale: float = 1.0,
        extrapolate: bool = True,
        smooth: bool | None = None,
    ) -> None:
        self.keys = resolve_keys(keyframes, time_scale)
        segments = [_segment(a, b) for a, b in zip(self.keys, self.keys[1:])]
        # smooth: continuous velocity through linear keys (default: presets, whose keys
        # sample a motion); a scene's `camera:` positions interpolate as written
        self.segments = _smooth_joins(segments) if (extrapolate if smooth is None else smooth) \
            else list(segments)
        self.extrapolate = extrapolate
        self._first = Rigid.from_user(self.keys[0].values)
        self._origin = self._first.inverse()
        self._last = self.segments[-1].end if self.segments else self._first
        self._rate = (
            self.segments[-1].end_rate()
            if self.segments and extrapolate
            else np.zeros(len(AXES))
        )

    def at(self, t: float) -> Rigid:
        return self._origin.compose(self._raw(t))

    def _raw(self, t: float) -> Rigid:
        if not self.segments or t <= self.keys[0].t:
            return self._first
        if t >= self.keys[-1].t:
            return self._last.compose(rigid_exp(self._rate * (t - self.keys[-1].t)))
        for segment in self.segments:
            if t <= segment.t1:
                return segment.at(t)
        raise AssertionError("unreachable: t is inside the keyed range")


@dataclass(frozen=True)
class SceneMotion:
    """A scene's camera motion: its effect's track with its own `camera:` track on top.

    The custom keys are expressed in the effect's moving camera frame (an operator panning
    on a moving dolly), so `effect.at(t) ∘ camera.at(t)`.
    """

    effect: Track | None = None
    camera: Track | None = None

    def at(self, t: float) -> Rigid:
        motion = Rigid.identity()
        for track in (self.effect, self.camera):
            if track is not None:
                motion = motion.compose(track.at(t))
        return motion


class PresetLike(Protocol):
    span: str
    keyframes: Sequence[KeyframeLike]


def scene_motion(
    preset: PresetLike | None,
    camera: Sequence[KeyframeLike] | None,
    scene_seconds: float,
) -> SceneMotion:
    """Tracks for a scene lasting `scene_seconds` (a `span: scene` preset stretches to it)."""
    effect = None
    if preset is not None:
        scale = scene_seconds if preset.span == "scene" else 1.0
        effect = Track(preset.keyframes, time_scale=scale, extrapolate=True)
    custom = Track(camera, extrapolate=False) if camera else None
    return SceneMotion(effect, custom)


# --------------------------------------------------------------------------- the camera path


def camera_path(
    motions: Sequence[SceneMotion], frame_counts: Sequence[int], fps: float
) -> list[Pose]:
    """Absolute pose of every output frame: one continuous camera through all scenes.

    Scene k's motion is composed onto the pose where scene k-1 ends — the pose one frame
    after its last frame, at local time `frames / fps` — in that camera's own frame, so
    after a turn to the right a zoom goes along the new view axis. Frame i of a scene is
    at local time `i / fps`, so frames are evenly spaced across every join.
    """
    start = Rigid.identity()
    absolute: list[Rigid] = []
    for motion, count in zip(motions, frame_counts, strict=True):
        absolute.extend(start.compose(motion.at(i / fps)) for i in range(count))
        start = start.compose(motion.at(count / fps))
    return poses_from_rigids(absolute)


def poses_from_rigids(motions: Sequence[Rigid]) -> list[Pose]:
    """User-convention poses with angles kept continuous from one to the next.

    `angles_from_rotation` wraps yaw and roll into (-180, 180] and pitch into [-90, 90];
    a full turn would show as a jump from 180 to -180. Here each pose takes whichever
    equivalent angles lie nearest to the previous pose's (±360°, or the mirrored solution
    yaw+180, 180-pitch, roll+180 past the vertical), so `rotate-360` reads 0 … 360.
    """
    poses: list[Pose] = []
    previous: np.ndarray | None = None
    for motion in motions:
        angles = _continuous_angles(motion.rotation, previous)
        x, y, z = motion.user_position().tolist()
        poses.append(Pose(x, y, z, *angles.tolist()))
        previous = angles
    return poses


def _continuous_angles(rotation: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    yaw, pitch, roll = angles_from_rotation(rotation)
    direct = np.array([yaw, pitch, roll])
    if previous is None:
        return direct
    mirrored = np.array([yaw + 180.0, 180.0 - pitch, roll + 180.0])
    candidates = [_nearest_turns(c, previous) for c in (direct, mirrored)]
    return min(candidates, key=lambda c: float(np.sum(np.abs(c - previous))))


def _nearest_turns(angles: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return angles + 360.0 * np.round((reference - angles) / 360.0)


def user_values(motion: Rigid) -> tuple[float, ...]:
    """(x, y, z, yaw, pitch, roll) of a relative motion in the user convention."""
    yaw, pitch, roll = angles_from_rotation(motion.rotation)
    return (*motion.user_position().tolist(), yaw, pitch, roll)
