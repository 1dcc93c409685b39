"""Camera poses and intrinsics (numpy only).

Two conventions, converted only here:

* **User convention** (screenplay, presets, `plan --json`; SPEC §4): `x` right, `y` up,
  `z` forward; `yaw` > 0 turns the camera right, `pitch` > 0 tilts it up, `roll` > 0 rolls
  it clockwise as the operator sees it (so the picture turns counter-clockwise on screen).
  Angles in degrees.
* **Internal convention** (all matrices, the warp): OpenCV's right-handed camera frame,
  `x` right, `y` down, `z` forward. A user position (x, y, z) is (x, -y, z) internally.

The orientation is `world_from_cam = R_yaw · R_pitch · R_roll` (yaw about the world
vertical, then pitch about the camera's right axis, then roll about its view axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_USER_TO_CV = np.array([1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Pose:
    """Absolute camera pose in the user convention (scene units, degrees)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    @property
    def position_cv(self) -> np.ndarray:
        """Camera centre in the internal (OpenCV) world frame, shape (3,)."""
        return np.array([self.x, self.y, self.z]) * _USER_TO_CV

    @property
    def world_from_cam_rotation(self) -> np.ndarray:
        """(3, 3) rotation taking camera-frame directions to world directions (OpenCV axes)."""
        return rotation_from_angles(self.yaw, self.pitch, self.roll)


def _rot_x(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """world_from_cam rotation (OpenCV axes) from user-convention angles in degrees.

    In OpenCV axes (y down): +yaw about +y swings the view axis toward +x (right); +pitch
    about +x swings it toward -y (up); +roll about +z swings the camera's up vector toward
    +x, i.e. clockwise as seen from behind the camera.
    """
    return _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)


def angles_from_rotation(rotation: np.ndarray) -> tuple[float, float, float]:
    """Inverse of `rotation_from_angles`: (yaw, pitch, roll) in degrees, pitch in [-90, 90]."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = math.degrees(math.asin(float(np.clip(-r[1, 2], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(r[0, 2], r[2, 2]))
    roll = math.degrees(math.atan2(r[1, 0], r[1, 1]))
    return yaw, pitch, roll


def pose_from_matrix(rotation: np.ndarray, position_cv: np.ndarray) -> Pose:
    """Build a user-convention Pose from a world_from_cam rotation and an OpenCV-frame centre."""
    yaw, pitch, roll = angles_from_rotation(rotation)
    x, y, z = (np.asarray(position_cv, dtype=np.float64) * _USER_TO_CV).tolist()
    return Pose(x=x, y=y, z=z, yaw=yaw, pitch=pitch, roll=roll)


def relative_move(previous: Pose, current: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(R, t) with `p_current = R @ p_previous + t` for points in each camera's frame.

    This is `cur_cam_from_prev_cam`: the move the warp applies to the previous frame's
    point cloud. OpenCV axes, shapes (3, 3) and (3,).
    """
    r_prev = previous.world_from_cam_rotation
    r_cur = current.world_from_cam_rotation
    rotation = r_cur.T @ r_prev
    translation = r_cur.T @ (previous.position_cv - current.position_cv)
    return rotation, translation


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """(3, 3) pinhole matrix with square pixels from the *vertical* field of view.

    The principal point is the geometric centre of the pixel grid, (W-1)/2 and (H-1)/2,
    in OpenCV's pixel-centre convention, so the same move shifts 832×448 and 640×640
    frames by the same number of pixels for the same height.
    """
    focal = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array(
        [[focal, 0.0, (width - 1) / 2.0], [0.0, focal, (height - 1) / 2.0], [0.0, 0.0, 1.0]]
    )
