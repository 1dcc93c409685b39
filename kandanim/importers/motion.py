"""Deforum's per-frame camera deltas → absolute kandanim camera poses, and back to few keys.

Conventions (REALWORLD.md §A.4, re-derived in the tests by measuring preview motion):

* **3D.** Deforum warps with `X_new = X_old·R + T` (PyTorch3D row vectors) in a camera
  frame that is OpenCV's (x right, y down, z forward), `R = Rx(rx)·Ry(ry)·Rz(rz)` and
  `T = (−tx, ty, −tz)/200`. So the new camera sits at `−R·T` in the old one, turned by `R`:
  `translation_x/y/z > 0` move the camera right/up/forward and `rotation_3d_x/y/z > 0`
  tilt it up, turn it right and roll it clockwise — kandanim's own signs (SPEC §4).
  Units: Deforum's depth spans [1, 2] (nearest 1); kandanim's imported screenplays set
  `near: 1, far: 2`, so a sideways move of `tx/200` units shifts the picture as Deforum's
  does. Deforum's dolly expands the nearest content by `1 + tz/(200·tan(fov/2))`, which a
  kandanim move of `tz/(200·tan(fov/2))` reproduces at depth 1.
* **Non-square frames.** Deforum moves sideways (translation_x, rotation_3d_y) W/H times
  faster in pixels than up/down. `match="screen"` multiplies those two channels by
  `(W/H)/aspect_ratio` to keep the on-screen speed the user saw; `match="geometry"` keeps
  kandanim's square-pixel camera (the same units both ways).
* **2D.** Each frame Deforum maps content by `M = Rot(centre, angle, zoom)·Shift(tx, ty)`
  (pixels, y down). Over a flat picture at depth 1 the same picture motion is the camera
  move: dolly `1 − 1/zoom`, roll `+angle`, and a sideways move
  `−(1/f)·(shift + (Rᵀ/zoom − I)·(centre − middle))` with f the focal length in pixels.
* Frame 0's value is never applied; frame n's delta carries frame n−1 to frame n, once,
  whatever the cadence (Deforum warps the in-between frames with their own deltas too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kandanim.camera import intrinsics
from kandanim.importers.animation import Animation
from kandanim.trajectory import Rigid, Track, poses_from_rigids

TRANSLATION_SCALE = 1.0 / 200.0  # Deforum's TRANSLATION_SCALE
DEPTH_NEAR, DEPTH_FAR = 1.0, 2.0  # Deforum's depth range, written as near/far
MOTION_TOLERANCE_PX = 0.5  # per-frame on-screen motion may differ this much after simplifying
POSITION_TOLERANCE_PX = 1.0  # and where things are on screen, this much


def _rot_x(rad: float) -> np.ndarray:
    c, s = math.cos(rad), math.sin(rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(rad: float) -> np.ndarray:
    c, s = math.cos(rad), math.sin(rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(rad: float) -> np.ndarray:
    c, s = math.cos(rad), math.sin(rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def sideways_factor(animation: Animation, size: tuple[int, int], match: str) -> np.ndarray:
    """(frames,) factor on translation_x and rotation_3d_y (1 for `geometry`)."""
    if match == "geometry":
        return np.ones(animation.frames)
    width, height = size
    return (width / height) / animation.aspect


def deltas_3d(animation: Animation, sideways: np.ndarray) -> list[Rigid]:
    """Per-frame camera moves `prev_from_cur` (OpenCV axes, kandanim units); [0] is identity."""
    m = animation.motion
    deltas = [Rigid.identity()]
    for n in range(1, animation.frames):
        tan_half = math.tan(math.radians(animation.fov[n]) / 2.0)
        rotation = (_rot_x(math.radians(m["rotation_3d_x"][n]))
                    @ _rot_y(math.radians(m["rotation_3d_y"][n] * sideways[n]))
                    @ _rot_z(math.radians(m["rotation_3d_z"][n])))
        move = np.array([
            m["translation_x"][n] * sideways[n] * TRANSLATION_SCALE,
            -m["translation_y"][n] * TRANSLATION_SCALE,  # y up in Deforum's units, down in OpenCV's
            m["translation_z"][n] * TRANSLATION_SCALE / tan_half,
        ])
        deltas.append(Rigid(rotation, rotation @ move))
    return deltas


def deltas_2d(animation: Animation, size: tuple[int, int], fov: float, match: str) -> list[Rigid]:
    """Per-frame camera moves over a flat picture at depth 1 that redo Deforum's 2D warp."""
    width, height = size
    source_w, source_h = animation.size or size
    scale_y = height / source_h
    scale_x = width / source_w if match == "screen" else scale_y
    focal = intrinsics(width, height, fov)[1, 1]
    m = animation.motion
    deltas = [Rigid.identity()]
    for n in range(1, animation.frames):
        zoom, angle = float(m["zoom"][n]), math.radians(float(m["angle"][n]))
        # content rotation on screen (y down): R_c = [[cos, sin], [-sin, cos]]
        content = np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
        shift = np.array([m["translation_x"][n] * scale_x, m["translation_y"][n] * scale_y])
        # Deforum's centre is (W·cx, H·cy) in pixel coordinates: relative to the principal
        # point ((W−1)/2, (H−1)/2), half a pixel off even for the default 0.5
        centre = np.array([m["transform_center_x"][n] * width - (width - 1) / 2.0,
                           m["transform_center_y"][n] * height - (height - 1) / 2.0])
        sideways = -(shift + (content.T / zoom - np.eye(2)) @ centre) / focal
        position = np.array([sideways[0], sideways[1], DEPTH_NEAR * (1.0 - 1.0 / zoom)])
        deltas.append(Rigid(_rot_z(angle), position))
    return deltas


def integrate(deltas: Sequence[Rigid]) -> list[Rigid]:
    """Absolute poses (frame 0 at the origin): pose_n = pose_{n-1} ∘ delta_n, n ≥ 1."""
    poses = [Rigid.identity()]
    for delta in deltas[1:]:
        poses.append(poses[-1].compose(delta))
    return poses


# --------------------------------------------------------------------------- simplifying


class Probe:
    """Where points seen by one camera land in another camera's picture (pixels)."""

    def __init__(self, size: tuple[int, int], fov: float, depths: Sequence[float]) -> None:
        width, height = size
        self.k = intrinsics(width, height, fov)
        us = np.array([0.05, 0.5, 0.95]) * (width - 1)
        vs = np.array([0.05, 0.5, 0.95]) * (height - 1)
        pixels = np.array([(u, v) for u in us for v in vs for _ in depths])
        zs = np.array([z for _ in us for _ in vs for z in depths])
        rays = np.linalg.solve(self.k, np.c_[pixels, np.ones(len(pixels))].T).T
        self.points = rays * zs[:, None]  # (N, 3) in the seeing camera's frame
        self.pixels = pixels

    def land(self, seeing: Rigid, other: Rigid) -> np.ndarray:
        """(N, 2) pixels in `other` of the probe points fixed in `seeing`'s frame."""
        move = other.inverse().compose(seeing)
        p = self.points @ move.rotation.T + move.position
        z = np.maximum(p[:, 2], 1e-6)  # behind the camera: far off screen, a big error
        return (p[:, :2] / z[:, None]) * np.array([self.k[0, 0], self.k[1, 1]]) + self.k[:2, 2]

    def motion(self, a: Rigid, b: Rigid) -> np.ndarray:
        """(N, 2) on-screen motion from camera a to camera b."""
        return self.land(a, b) - self.pixels


@dataclass(frozen=True)
class _Key:
    """A keyframe in the form `trajectory.Track` reads."""

    t: float
    x: float
    y: float
    z: float
    yaw: float
    pitch: float
    roll: float
    ease: str = "linear"


def user_keys(poses: Sequence[Rigid], fps: int) -> list[_Key]:
    """Every pose as a keyframe (angles continuous from one to the next)."""
    return [_Key(i / fps, p.x, p.y, p.z, p.yaw, p.pitch, p.roll)
            for i, p in enumerate(poses_from_rigids(poses))]


EASINGS = ("linear", "in-out", "in", "out")  # tried in this order for each segment


def simplify(poses: Sequence[Rigid], fps: int, probe: Probe,
             motion_tolerance: float = MOTION_TOLERANCE_PX,
             position_tolerance: float = POSITION_TOLERANCE_PX) -> list[tuple[int, str]]:
    """(index, easing) of the poses to keep as keyframes (first and last always); the
    easing shapes the segment that ends at that key.

    Between kept keys kandanim's own interpolation (`trajectory.Track`) must reproduce
    every frame's on-screen motion within `motion_tolerance` pixels and every frame's
    picture position within `position_tolerance` pixels, measured on probe points across
    the frame at Deforum's near and far depth. Greedy: from each key, the longest segment
    that passes (found by doubling, then bisecting), so the work stays O(N log N) even for
    motion that needs a key on every frame.
    """
    keys = user_keys(poses, fps)
    original = [np.zeros((len(probe.pixels), 2))] + [
        probe.motion(poses[n - 1], poses[n]) for n in range(1, len(poses))]
    last = len(poses) - 1

    def fits(i: int, j: int) -> str | None:
        """The first easing that carries key i to key j within tolerance, else None."""
        if j - i < 2:
            return "linear"
        return next((e for e in EASINGS if _fits(poses, keys, original, probe, i, j, e,
                                                   motion_tolerance, position_tolerance)), None)

    kept: list[tuple[int, str]] = [(0, "linear")]
    i = 0
    while i < last:
        good, easing, step = i + 1, "linear", 2
        bad = None
        while good < last:
            j = min(i + step, last)
            found = fits(i, j)
            if found is None:
                bad = j
                break
            good, easing, step = j, found, step * 2
        while bad is not None and bad - good > 1:
            middle = (good + bad) // 2
            found = fits(i, middle)
            if found is None:
                bad = middle
            else:
                good, easing = middle, found
        kept.append((good, easing))
        i = good
    return kept


def _fits(poses: Sequence[Rigid], keys: Sequence[_Key], original: Sequence[np.ndarray],
          probe: Probe, i: int, j: int, easing: str, motion_tol: float,
          position_tol: float) -> bool:
    """Does kandanim's interpolation from key i to key j stay within both tolerances?"""
    a, b = keys[i], keys[j]
    start = Rigid.from_user((a.x, a.y, a.z, a.yaw, a.pitch, a.roll))
    track = Track([_shifted(a, a.t), _shifted(b, a.t, easing)], extrapolate=False)
    previous = poses[i]
    for n in range(i + 1, j + 1):
        current = start.compose(track.at(keys[n].t - a.t))
        motion = np.linalg.norm(probe.motion(previous, current) - original[n], axis=1).max()
        position = np.linalg.norm(probe.land(poses[n], current) - probe.pixels, axis=1).max()
        if motion > motion_tol or position > position_tol:
            return False
        previous = current
    return True


def _shifted(key: _Key, t0: float, easing: str = "linear") -> _Key:
    return _Key(key.t - t0, key.x, key.y, key.z, key.yaw, key.pitch, key.roll, easing)
